# lit configuration for qcc's FileCheck tests: one .mlir per dialect/pass/tool.
import os
import shutil
import sys

import lit.formats

config.name = "qcc"
config.test_format = lit.formats.ShTest(execute_external=False)
config.suffixes = [".mlir"]
config.test_source_root = os.path.dirname(__file__)
config.excludes = ["lit.cfg.py", "inputs"]
# The tools come from the environment that runs lit (editable install or wheel).
config.environment["PATH"] = os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", "")
config.substitutions.append(("%python", sys.executable))
config.substitutions.append(("%inputs", os.path.join(os.path.dirname(__file__), "inputs")))
if shutil.which("filecheck", path=config.environment["PATH"]) is None:
    lit_config.fatal("filecheck is not installed (pip install filecheck)")
