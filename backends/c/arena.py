"""Static memory planning for the C backend: one arena, offsets from liveness.

A buffer is live over an inclusive range of step indices. Two buffers whose
ranges overlap conflict (an edge of the conflict graph); buffers are placed
greedily, largest first, at the lowest aligned offset that overlaps no placed
neighbour. The plan is checked before it is returned.
"""

from __future__ import annotations

from dataclasses import dataclass

import networkx as nx

ALIGN = 16


@dataclass
class Buffer:
    name: str
    size: int  # bytes
    start: int  # first step at which the buffer is live
    end: int  # last step at which it is live (inclusive)
    offset: int = -1


def _align(n: int, a: int = ALIGN) -> int:
    return (n + a - 1) // a * a


def conflict_graph(buffers: list[Buffer]) -> nx.Graph:
    g = nx.Graph()
    g.add_nodes_from(range(len(buffers)))
    order = sorted(range(len(buffers)), key=lambda i: buffers[i].start)
    for pos, i in enumerate(order):  # sweep: neighbours start before i ends
        for j in order[pos + 1:]:
            if buffers[j].start > buffers[i].end:
                break
            g.add_edge(i, j)
    return g


def plan(buffers: list[Buffer]) -> int:
    """Sets every buffer's offset; returns the arena size in bytes."""
    g = conflict_graph(buffers)
    placed: set[int] = set()
    for i in sorted(range(len(buffers)), key=lambda i: (-buffers[i].size, buffers[i].start, i)):
        b = buffers[i]
        if b.size == 0:
            b.offset = 0
            placed.add(i)
            continue
        busy = sorted((buffers[j].offset, buffers[j].offset + buffers[j].size)
                      for j in g.neighbors(i) if j in placed and buffers[j].size)
        off = 0
        for lo, hi in busy:
            if off + b.size <= lo:
                break
            off = max(off, _align(hi))
        b.offset = off
        placed.add(i)
    size = _align(max((b.offset + b.size for b in buffers), default=0))
    for i, j in g.edges:  # the plan's invariant, cheap to re-check
        a, b = buffers[i], buffers[j]
        if a.size and b.size and a.offset < b.offset + b.size and b.offset < a.offset + a.size:
            raise AssertionError(f"arena plan overlaps live buffers {a.name} and {b.name}")
    return size
