"""`qcc-opt`: xDSL's modular optimizer driver with qcc's dialects, passes and ONNX frontend.

    qcc-opt IN.mlir|IN.onnx -p pass-a,pass-b{opt=1} [--print-ir-after-all]
            [--verify-diagnostics] [--print-large-constants] [--input-shape NAME=D0,...]

Verifies after every pass. Constants with more than 32 elements print elided
unless `--print-large-constants` is given (elided IR does not parse back).
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from collections.abc import Sequence
from typing import IO

from xdsl.dialects.builtin import ModuleOp
from xdsl.passes import ModulePass, PassPipeline
from xdsl.printer import Printer
from xdsl.utils.exceptions import DiagnosticException, ParseError, VerifyException
from xdsl.xdsl_opt_main import xDSLOptMain

from qcc.dialects.onnx import elide_constants
from qcc.errors import QccError, internal_error

ELIDE_DEFAULT = 32
_EXPECTED_ERROR = re.compile(r"expected-error(?:\s*@[+-]?\d+)?\s*\{\{(.*?)\}\}")


class _DiagnosticsMismatch(Exception):
    """--verify-diagnostics found errors other than the expected ones (exit 1)."""


class QccOptMain(xDSLOptMain):
    def register_all_dialects(self):
        super().register_all_dialects()
        from qcc.universe import QCC_DIALECTS

        for name, factory in QCC_DIALECTS.items():
            if name not in self.ctx.registered_dialect_names:
                self.ctx.register_dialect(name, factory)

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

    def apply_passes(self, prog: ModuleOp):
        # The input is verified too, not only what passes produce.
        if not self.args.disable_verify:
            try:
                prog.verify()
            except DiagnosticException as e:
                raise type(e)(f"input IR does not verify: {e}") from None
        super().apply_passes(prog)

    def run(self):
        if not self.args.verify_diagnostics:
            return super().run()
        self._run_verify_diagnostics()

    def _run_verify_diagnostics(self):
        """MLIR-style negative tests: each `// -----` chunk states the error it must
        raise with `// expected-error {{substring}}`; a chunk without one must pass.
        Matching is by message (xDSL ops keep no source location to match lines)."""
        chunks, ext = self.prepare_input()
        out = self.prepare_output()
        failures: list[str] = []
        for i, (chunk, offset) in enumerate(chunks):
            text = chunk.read().decode()
            chunk.close()
            expected = _EXPECTED_ERROR.findall(text)
            from io import BytesIO

            try:
                module = self.parse_chunk(BytesIO(text.encode()), ext, offset)
                if module is not None:
                    self.apply_passes(module)
                    if i > 0:
                        out.write("// -----\n")
                    out.write(self.output_resulting_program(module))
                got = None
            except (ParseError, DiagnosticException, QccError) as e:
                got = str(e)
            where = f"chunk {i + 1} (line {offset + 1})"
            if got is None and expected:
                failures.append(f"{where}: expected error '{expected[0]}' was not produced")
            elif got is not None and not expected:
                failures.append(f"{where}: unexpected error: {got.strip().splitlines()[-1]}")
            elif got is not None and not any(x in got for x in expected):
                failures.append(f"{where}: error '{got.strip().splitlines()[-1]}' does not contain '{expected[0]}'")
        out.flush()
        if failures:
            raise _DiagnosticsMismatch("; ".join(failures))

    def _elide(self) -> int | None:
        return None if self.args.print_large_constants else ELIDE_DEFAULT

    def output_resulting_program(self, prog: ModuleOp) -> str:
        with elide_constants(self._elide()):
            return super().output_resulting_program(prog)

    def get_input_name(self) -> str:
        return getattr(self.args, "input_file", None) or "<stdin>"


def main(argv: Sequence[str] | None = None) -> int:
    from qcc.interpreter import keep_freed_memory

    keep_freed_memory()
    try:
        tool = QccOptMain(description="qcc modular optimizer driver", args=argv)
        tool.run()
    except _DiagnosticsMismatch as e:
        print(f"qcc-opt: diagnostics mismatch: {e}", file=sys.stderr)
        return 1
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
    except Exception as e:  # a bug in qcc, not in the input: still one line
        return internal_error("qcc-opt", e)
    return 0


if __name__ == "__main__":
    sys.exit(main())
