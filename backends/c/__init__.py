"""The C backend: quantized IR -> C99 (model.c, model.h, Makefile), and a host
build-and-run harness for testing it against the integer interpreter."""

from .emit import CModel, emit_c, emit_model
from .run import build_and_run_host, build_and_run_host_q, build_host

__all__ = ["CModel", "emit_c", "emit_model", "build_and_run_host", "build_and_run_host_q", "build_host"]
