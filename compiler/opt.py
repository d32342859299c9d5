"""`qcc-opt`: xDSL's modular optimizer driver with qcc's dialects, passes and ONNX frontend.

    qcc-opt IN.mlir|IN.onnx -p pass-a,pass-b{opt=1} [--print-ir-after-all]
            [--verify-diagnostics] [--print-large-constants] [--input-shape NAME=D0,...]

Verifies after every pass. Constants with more than 32 elements print elided
unless `--print-large-constants` is given (elided IR does not parse back).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from typing import IO

from xdsl.dialects.builtin import ModuleOp
from xdsl.passes import ModulePass, PassPipeline
from xdsl.printer import Printer
from xdsl.utils.exceptions import DiagnosticException, ParseError
from xdsl.xdsl_opt_main import xDSLOptMain

from qcc.dialects.onnx import elide_constants
from qcc.errors import QccError

ELIDE_DEFAULT = 32


class QccOptMain(xDSLOptMain):
    def register_all_dialects(self):
        super().register_all_dialects()
        from qcc.dialects.onnx import ONNX

        if "onnx" not in self.ctx.registered_dialect_names:
            self.ctx.register_dialect("onnx", lambda: ONNX)

    def register_all_passes(self):
        super().register_all_passes()
        from qcc.universe import all_passes

        for name, factory in all_passes().items():
            self.register_pass(name, factory)

    def register_all_frontends(self):
        super().register_all_frontends()

        def parse_onnx(io: IO[bytes]) -> ModuleOp:
            import onnx

            from qcc.importer import import_model, parse_input_shapes

            try:
                model = onnx.load_model_from_string(io.read())
            except Exception as e:
                raise QccError(f"{self.get_input_name()}: not a valid ONNX model ({type(e).__name__})") from None
            return import_model(model, parse_input_shapes(self.args.input_shape))

        self.available_frontends["onnx"] = parse_onnx

    def register_all_arguments(self, arg_parser: argparse.ArgumentParser):
        super().register_all_arguments(arg_parser)
        arg_parser.add_argument("--print-ir-after-all", action="store_true",
                                help="print the IR to stderr after every pass")
        arg_parser.add_argument("--print-large-constants", action="store_true",
                                help=f"print constants with more than {ELIDE_DEFAULT} elements in full")
        arg_parser.add_argument("--input-shape", action="append", default=[], metavar="NAME=D0,D1,...",
                                help="bind dynamic input dimensions of an .onnx input (repeatable)")

    def setup_pipeline(self):
        start = time.perf_counter()

        def callback(prev: ModulePass | None, module: ModuleOp, nxt: ModulePass | None) -> None:
            nonlocal start
            if prev is not None:
                if self.args.time_passes:
                    print(f"Pass {prev.name} took {time.perf_counter() - start:.6f} seconds", file=sys.stderr)
                if not self.args.disable_verify:
                    try:
                        module.verify()
                    except DiagnosticException as e:
                        raise type(e)(f"IR after {prev.name} does not verify: {e}") from None
                if self.args.print_ir_after_all:
                    print(f"// -----// IR Dump After {prev.name} //----- //", file=sys.stderr)
                    with elide_constants(self._elide()):
                        Printer(stream=sys.stderr).print_op(module)
                    print(file=sys.stderr)
            start = time.perf_counter()

        self.pipeline = PassPipeline.parse_spec(self.available_passes, self.args.passes, callback)

    def _elide(self) -> int | None:
        return None if self.args.print_large_constants else ELIDE_DEFAULT

    def output_resulting_program(self, prog: ModuleOp) -> str:
        with elide_constants(self._elide()):
            return super().output_resulting_program(prog)

    def get_input_name(self) -> str:
        return getattr(self.args, "input_file", None) or "<stdin>"


def main(argv: Sequence[str] | None = None) -> int:
    try:
        tool = QccOptMain(description="qcc modular optimizer driver", args=argv)
        tool.run()
    except QccError as e:
        print(f"qcc-opt: error: {e}", file=sys.stderr)
        return 2
    except (ParseError, DiagnosticException) as e:
        print(f"qcc-opt: error: {e}", file=sys.stderr)
        return 2
    except ValueError as e:  # unknown pass names, bad pass options, unknown extensions
        print(f"qcc-opt: error: {e}", file=sys.stderr)
        return 2
    except FileNotFoundError as e:
        print(f"qcc-opt: error: {e.filename}: no such file", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
