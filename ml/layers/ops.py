"""Sparse gather/scatter operators of one batch, shared by every layer of a forward pass.

Edges follow the reference CGNN (Tony-Y/cgnn): edge ``e`` runs from ``edge_src[e] = j`` (the
atom whose neighbour list it belongs to) to ``edge_dst[e] = i`` (one neighbour of ``j``), and
the convolution updates the SOURCE from its neighbours,

.. math::
    \\mathbf{a}_j = \\sum_{e:\\,\\mathrm{src}(e) = j} \\mathbf{m}_e, \\qquad
    \\mathbf{m}_e = f(\\mathbf{h}_{\\mathrm{dst}(e)}, \\ldots)

exactly as ``output.index_add_(0, edge_sources, f(input[edge_targets]))`` there.

Two interchangeable back ends:

* ``"csr"``: each operator is a sparse CSR matrix (``(N, N)`` adjacency, ``(N, E)`` incidence,
  ``(B, N)`` pooling) multiplied with the dense features; the backward pass multiplies with the
  precomputed transpose, so neither direction needs an atomic or serial scatter. On CPU this is
  5-25x faster than ``index_add_``/advanced-index backward (measured on 2 cores: a 96-wide
  gather+scatter over 50k edges, forward and backward, 0.9 ms vs 25 ms).
* ``"index"``: ``index_select`` and ``index_add_`` (what GPUs do well with atomics, and what
  ``torch.compile`` traces).

Sums are accumulated in float32 even under bf16 autocast: a sum over ~12 neighbours in bf16
loses the residual's precision.
"""

from __future__ import annotations

import warnings

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

__all__ = ["GraphOps", "resolve_aggregation"]


def resolve_aggregation(mode: str, device: torch.device) -> str:
    """Map ``"auto"`` to ``"csr"`` on CPU (eager) and ``"index"`` elsewhere."""
    if mode not in ("auto", "csr", "index"):
        raise ValueError(f"aggregation must be 'auto', 'csr' or 'index', got {mode!r}")
    if mode != "auto":
        return mode
    compiling = torch.compiler.is_compiling()
    return "csr" if device.type == "cpu" and not compiling else "index"


def _csr(crow: Tensor, col: Tensor, shape: tuple[int, int], values: Tensor) -> Tensor:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "CSR support is in beta"
        return torch.sparse_csr_tensor(crow, col, values, shape, check_invariants=False)


def _crow(rows_sorted: Tensor, n_rows: int) -> Tensor:
    counts = torch.bincount(rows_sorted, minlength=n_rows)
    crow = torch.zeros(n_rows + 1, dtype=torch.long, device=rows_sorted.device)
    torch.cumsum(counts, 0, out=crow[1:])
    return crow


def _sort(keys: Tensor) -> Tensor | None:
    """Stable sorting permutation of ``keys``, or ``None`` when already sorted."""
    if keys.numel() < 2 or bool((keys[1:] >= keys[:-1]).all()):
        return None
    return torch.argsort(keys, stable=True)


def _sparse_mm(a: Tensor, x: Tensor) -> Tensor:
    """``a @ x`` in ``x``'s dtype: autocast would cast ``x`` to bf16, which sparse CSR lacks."""
    with torch.autocast(device_type=x.device.type, enabled=False):
        return a @ x


class _SpMM(torch.autograd.Function):
    """``y = A x`` with ``dy/dx`` given by a precomputed ``A^T`` (both sparse constants)."""

    @staticmethod
    def forward(ctx, x: Tensor, a: Tensor, a_t: Tensor) -> Tensor:  # type: ignore[override]
        ctx.a_t = a_t
        return _sparse_mm(a, x)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None, None]:  # type: ignore[override]
        return _sparse_mm(ctx.a_t, grad.contiguous()), None, None


class _GatherCSR(torch.autograd.Function):
    """``y = x[index]`` whose backward sums with the sparse ``(N, E)`` transpose."""

    @staticmethod
    def forward(ctx, x: Tensor, index: Tensor, scatter_t: Tensor) -> Tensor:  # type: ignore[override]
        ctx.scatter_t = scatter_t
        return x.index_select(0, index)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None, None]:  # type: ignore[override]
        return _sparse_mm(ctx.scatter_t, grad.contiguous()), None, None


class _ScatterCSR(torch.autograd.Function):
    """``y = S m`` (sum of edge rows per node) whose backward is a gather."""

    @staticmethod
    def forward(ctx, m: Tensor, scatter: Tensor, index: Tensor) -> Tensor:  # type: ignore[override]
        ctx.save_for_backward(index)
        return _sparse_mm(scatter, m)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None, None]:  # type: ignore[override]
        (index,) = ctx.saved_tensors
        return grad.index_select(0, index), None, None


def _f32(x: Tensor) -> Tensor:
    x = x if x.dtype == torch.float32 or x.dtype == torch.float64 else x.float()
    return x.contiguous()


class GraphOps:
    """Gather, scatter and pooling operators of one batch.

    Args:
        edge_src: ``(E,)`` long, aggregating node of each edge (global index in the batch).
        edge_dst: ``(E,)`` long, neighbour node of each edge.
        graph_index: ``(N,)`` long, graph of each node, non-decreasing.
        node_counts: ``(B,)`` nodes per graph.
        mode: ``"csr"`` or ``"index"`` (see the module docstring); ``"auto"`` resolves by device.

    Sparse matrices are built lazily on first use and reused by every layer.
    """

    def __init__(
        self,
        edge_src: Tensor,
        edge_dst: Tensor,
        graph_index: Tensor,
        node_counts: Tensor,
        mode: str = "auto",
    ) -> None:
        self.edge_src = edge_src
        self.edge_dst = edge_dst
        self.graph_index = graph_index
        self.node_counts = node_counts
        self.num_nodes = int(graph_index.shape[0])
        self.num_edges = int(edge_src.shape[0])
        self.num_graphs = int(node_counts.shape[0])
        self.mode = resolve_aggregation(mode, edge_src.device)
        self._cache: dict[str, Tensor] = {}

    # -- sparse matrices (csr mode) ------------------------------------------------------
    def _incidence(self, index: Tensor, name: str, dtype: torch.dtype) -> Tensor:
        """``(N, E)`` 0/1 matrix with a one at ``(index[e], e)``."""
        key = f"{name}:{dtype}"
        if key not in self._cache:
            order = _sort(index)
            rows = index if order is None else index[order]
            cols = (
                torch.arange(self.num_edges, device=index.device) if order is None else order
            )
            ones = torch.ones(self.num_edges, device=index.device, dtype=dtype)
            self._cache[key] = _csr(_crow(rows, self.num_nodes), cols, (self.num_nodes, self.num_edges), ones)
        return self._cache[key]

    def _adjacency(self, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
        """``A`` with ``A[j, i]`` = number of edges ``j -> i``, and ``A^T``."""
        if f"adj:{dtype}" not in self._cache:
            n = self.num_nodes
            ones = torch.ones(self.num_edges, device=self.edge_src.device, dtype=dtype)
            for key, rows, cols in (
                (f"adj:{dtype}", self.edge_src, self.edge_dst),
                (f"adj_t:{dtype}", self.edge_dst, self.edge_src),
            ):
                order = _sort(rows)
                rows_s, cols_s = (rows, cols) if order is None else (rows[order], cols[order])
                self._cache[key] = _csr(_crow(rows_s, n), cols_s, (n, n), ones)
        return self._cache[f"adj:{dtype}"], self._cache[f"adj_t:{dtype}"]

    def _pooling(self, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
        """``(B, N)`` membership matrix ``P`` and its transpose."""
        key = f"pool:{dtype}"
        if key not in self._cache:
            dev, n = self.graph_index.device, self.num_nodes
            ones = torch.ones(n, device=dev, dtype=dtype)
            nodes = torch.arange(n, device=dev)
            order = _sort(self.graph_index)
            rows = self.graph_index if order is None else self.graph_index[order]
            cols = nodes if order is None else order
            self._cache[key] = _csr(_crow(rows, self.num_graphs), cols, (self.num_graphs, n), ones)
            # P^T: row i holds the single graph of node i
            self._cache[key + "_t"] = _csr(
                torch.arange(n + 1, device=dev), self.graph_index, (n, self.num_graphs), ones
            )
        return self._cache[key], self._cache[key + "_t"]

    # -- operators -----------------------------------------------------------------------
    def gather_src(self, x: Tensor) -> Tensor:
        """``(N, F) -> (E, F)``: ``x[edge_src]``."""
        if self.mode == "csr":
            x = _f32(x)
            inc = self._incidence(self.edge_src, "inc_src", x.dtype)
            return _GatherCSR.apply(x, self.edge_src, inc)
        return x.index_select(0, self.edge_src)

    def gather_dst(self, x: Tensor) -> Tensor:
        """``(N, F) -> (E, F)``: ``x[edge_dst]``."""
        if self.mode == "csr":
            x = _f32(x)
            inc = self._incidence(self.edge_dst, "inc_dst", x.dtype)
            return _GatherCSR.apply(x, self.edge_dst, inc)
        return x.index_select(0, self.edge_dst)

    def sum_at_src(self, m: Tensor) -> Tensor:
        """``(E, F) -> (N, F)``: :math:`a_j = \\sum_{e: src(e)=j} m_e` (float32)."""
        m = _f32(m)
        if self.mode == "csr":
            inc = self._incidence(self.edge_src, "inc_src", m.dtype)
            return _ScatterCSR.apply(m, inc, self.edge_src)
        out = m.new_zeros((self.num_nodes, m.shape[1]))
        return out.index_add(0, self.edge_src, m)

    def propagate(self, x: Tensor) -> Tensor:
        """``(N, F) -> (N, F)``: :math:`a_j = \\sum_{e: src(e)=j} x_{dst(e)}`, i.e. ``A x``.

        Equal to ``sum_at_src(gather_dst(x))`` without materialising the ``(E, F)`` rows.
        """
        x = _f32(x)
        if self.mode == "csr":
            a, a_t = self._adjacency(x.dtype)
            return _SpMM.apply(x, a, a_t)
        out = x.new_zeros((self.num_nodes, x.shape[1]))
        return out.index_add(0, self.edge_src, x.index_select(0, self.edge_dst))

    def pool_sum(self, x: Tensor) -> Tensor:
        """``(N, F) -> (B, F)``: sum over the nodes of each graph (float32)."""
        x = _f32(x)
        if self.mode == "csr":
            p, p_t = self._pooling(x.dtype)
            return _SpMM.apply(x, p, p_t)
        out = x.new_zeros((self.num_graphs, x.shape[1]))
        return out.index_add(0, self.graph_index, x)

    def pool_mean(self, x: Tensor) -> Tensor:
        """``(N, F) -> (B, F)``: mean over the nodes of each graph."""
        counts = self.node_counts.to(torch.float32).clamp_min(1.0).unsqueeze(1)
        return self.pool_sum(x) / counts
