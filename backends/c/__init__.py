"""The C backend: quantized IR -> C99 (model.c, model.h, Makefile), and a host
build-and-run harness for testing it against the integer interpreter."""

from .emit import CModel, emit, emit_c
from .run import build_and_run_host, build_and_run_host_q, build_host

__all__ = ["CModel", "emit", "emit_c", "build_and_run_host", "build_and_run_host_q", "build_host"]
