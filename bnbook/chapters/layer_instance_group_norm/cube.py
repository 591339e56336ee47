"""The (N, C, H x W) cube of Wu & He (2018), Fig. 2, drawn with matplotlib polygons.

Part of chapter 4, "LayerNorm, InstanceNorm, GroupNorm and RMSNorm"
(``notebooks/04_layer_instance_group_norm.ipynb``).  A feature map is a box of cells: N along
the horizontal axis, C into the depth, the H x W positions (flattened) upwards.  The three
visible faces are divided into cells; the cells that share one mean and variance with the
element (n=0, c=0) are blue, and the other pooled sets are shaded in alternating greys so
that the whole partition can be read off.
"""

from __future__ import annotations

import numpy as np
from matplotlib.axes import Axes
from matplotlib.collections import PolyCollection

from bnbook._validate import check_positive_int
from bnbook.chapters.layer_instance_group_norm.pooling import LABELS, _check_groups, _check_kind, pooled_sets

__all__ = ["cube_cells", "cube_colors", "draw_cube", "update_cube"]

HIGHLIGHT = "#3b6fb6"
SHADES = ("#f2f2f2", "#c9c9c9")
_DEPTH = (0.75, 0.55)  # screen offset of the full depth (C axis), oblique projection
_MAX_CELLS = 16


def _project(x: float, y: float, z: float) -> tuple[float, float]:
    return x + z * _DEPTH[0], y + z * _DEPTH[1]


def cube_cells(n: int, c: int, s: int) -> tuple[list[np.ndarray], np.ndarray]:
    """Polygons of the cube's visible cells and the (n, c, s) element each one shows.

    Faces: front (c = 0; N x S cells), top (s = S - 1; N x C cells), right (n = N - 1;
    C x S cells).  The box spans [0, 1] in N and in S, and the depth offset in C.

    Returns
    -------
    polygons : list of (4, 2) arrays
    elements : (P, 3) int array of (n, c, s) indices
    """
    n = check_positive_int("n", n)
    c = check_positive_int("c", c)
    s = check_positive_int("s", s)
    polys, elems = [], []
    for i in range(n):  # front face, c = 0
        for k in range(s):
            x0, x1, y0, y1 = i / n, (i + 1) / n, k / s, (k + 1) / s
            polys.append(np.array([_project(x0, y0, 0), _project(x1, y0, 0), _project(x1, y1, 0), _project(x0, y1, 0)]))
            elems.append((i, 0, k))
    for i in range(n):  # top face, s = S - 1
        for j in range(c):
            x0, x1, z0, z1 = i / n, (i + 1) / n, j / c, (j + 1) / c
            polys.append(np.array([_project(x0, 1, z0), _project(x1, 1, z0), _project(x1, 1, z1), _project(x0, 1, z1)]))
            elems.append((i, j, s - 1))
    for j in range(c):  # right face, n = N - 1
        for k in range(s):
            z0, z1, y0, y1 = j / c, (j + 1) / c, k / s, (k + 1) / s
            polys.append(np.array([_project(1, y0, z0), _project(1, y0, z1), _project(1, y1, z1), _project(1, y1, z0)]))
            elems.append((n - 1, j, k))
    return polys, np.array(elems, dtype=np.int64)


def cube_colors(kind: str, elements: np.ndarray, shape: tuple[int, int, int], num_groups: int | None = None) -> list:
    """Face colour of every cell: blue for the set of element (0, 0, 0), greys for the others."""
    _check_kind(kind)
    ids = pooled_sets(kind, shape, num_groups).numpy()
    target = ids[0, 0, 0]
    cell_ids = ids[elements[:, 0], elements[:, 1], elements[:, 2]]
    return [HIGHLIGHT if i == target else SHADES[int(i) % 2] for i in cell_ids]


def _cells(n: int, c: int, s: int) -> tuple[int, int, int]:
    return min(n, _MAX_CELLS), min(c, _MAX_CELLS), min(s, 6)


def draw_cube(
    ax: Axes, kind: str, n: int = 4, c: int = 8, s: int = 4, num_groups: int | None = None, title: bool = True
) -> PolyCollection:
    """Draw the cube for ``kind`` on ``ax`` and return its PolyCollection (for :func:`update_cube`).

    ``n, c, s`` are the numbers of cells along N, C and the positions (at most 16, 16 and 6
    are drawn; a group of channels needs c to be a multiple of ``num_groups``).
    """
    _check_kind(kind)
    shape = _cells(n, c, s)
    _check_groups(kind, shape[1], num_groups)
    polys, elems = cube_cells(*shape)
    coll = PolyCollection(polys, facecolors=cube_colors(kind, elems, shape, num_groups), edgecolors="0.35", lw=0.5)
    ax.add_collection(coll)
    ax.set(xlim=(-0.05, 1 + _DEPTH[0] + 0.1), ylim=(-0.22, 1 + _DEPTH[1] + 0.05), aspect="equal")
    ax.axis("off")
    ax.text(0.5, -0.06, "N (samples)", ha="center", va="top", fontsize=8)
    ax.text(-0.03, 0.5, "H, W", ha="right", va="center", fontsize=8, rotation=90)
    ax.text(1 + _DEPTH[0] / 2 + 0.06, _DEPTH[1] / 2 - 0.02, "C", ha="left", va="top", fontsize=8)
    if title:
        suffix = f", G = {num_groups}" if kind == "group" else ""
        ax.set_title(f"{LABELS[kind]}{suffix}", fontsize=10)
    coll.cube_shape = shape  # remembered by update_cube
    return coll


def update_cube(coll: PolyCollection, kind: str, n: int, c: int, s: int, num_groups: int | None = None) -> None:
    """Recolour (and, if the cell counts changed, re-grid) a cube drawn by :func:`draw_cube`."""
    _check_kind(kind)
    shape = _cells(n, c, s)
    _check_groups(kind, shape[1], num_groups)
    polys, elems = cube_cells(*shape)
    if getattr(coll, "cube_shape", None) != shape:
        coll.set_verts(polys)
        coll.cube_shape = shape
    coll.set_facecolors(cube_colors(kind, elems, shape, num_groups))
