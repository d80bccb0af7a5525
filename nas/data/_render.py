"""Vectorised numpy ray caster for the ``synth`` scenes.

Why a ray caster and not a rasteriser: every label the dataset promises (class, depth along the
optical axis, camera-frame normals, instance boundaries) falls out of one analytic ray/shape
intersection per pixel, exactly, at any resolution. Why batched: numpy pays a fixed overhead per
call, so a 64×64 image alone would spend most of its time in call overhead. A whole batch of
scenes is rendered with one set of array operations; each scene's parameters still come from its
own random stream, and every per-pixel operation is element-wise, so an image does not depend on
which batch it was rendered in.

World frame: x right, y up, z into the room; the floor is ``y = 0``. Camera frame (returned
normals): OpenCV convention, x right, y down, z forward. A ray is ``C + t·d`` with ``d`` scaled so
that its component along the optical axis is 1, which makes ``t`` the depth directly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["CLASS_NAMES", "GENERATOR_VERSION", "MAX_OBJECTS", "N_UNIFORMS", "Rendered", "render_batch"]

#: Bump whenever the pictures change for the same (seed, index): it is part of the cache key.
GENERATOR_VERSION = 1

#: Semantic classes, in label order. Walls (back and sides) share one class.
CLASS_NAMES: tuple[str, ...] = ("wall", "floor", "sphere", "box", "cylinder", "cone")

MAX_OBJECTS = 8
_N_PLANES = 4  # floor, back wall, left wall, right wall: slots 0..3; objects are slots 4..
_SPHERE, _BOX, _CYLINDER, _CONE = 0, 1, 2, 3
_N_TEX = 12  # uniforms per textured surface
_N_OBJ = 8 + _N_TEX  # uniforms per object: type, spare, 2 jitters, 3 sizes, yaw, texture
_GRID_COLS, _GRID_ROWS = 4, 3
_N_SCENE = 16 + _GRID_COLS * _GRID_ROWS  # 11 scene numbers, spares, one sort key per grid cell
N_UNIFORMS = _N_SCENE + _N_PLANES * _N_TEX + MAX_OBJECTS * _N_OBJ
_HFOV_DEG = 56.0
_F32 = np.float32
#: [kind, (radius, height), (lo, hi)] in metres; sized so objects span ~8-25 px at 64×64.
_SIZES = np.array(
    [
        [[0.35, 0.7], [0.0, 0.0]],  # sphere
        [[0.28, 0.6], [0.25, 0.6]],  # box
        [[0.25, 0.5], [0.35, 0.8]],  # cylinder
        [[0.3, 0.6], [0.8, 1.6]],  # cone
    ],
    _F32,
)


@dataclass(frozen=True)
class Rendered:
    """One rendered batch, arrays indexed by scene first.

    Attributes:
        image: uint8 [N, H, W, 3] (the lit, textured picture, with sensor noise).
        semseg: uint8 [N, H, W], indices into :data:`CLASS_NAMES`.
        depth: float32 [N, H, W], metres along the optical axis.
        normals: float32 [N, H, W, 3], unit, camera frame, facing the camera.
        edges: uint8 [N, H, W] in {0, 1}.
        instance: uint8 [N, H, W]: 0 floor, 1 back wall, 2 left wall, 3 right wall, 4+ objects.
    """

    image: np.ndarray
    semseg: np.ndarray
    depth: np.ndarray
    normals: np.ndarray
    edges: np.ndarray
    instance: np.ndarray


def _lerp(u: np.ndarray, lo: float, hi: float) -> np.ndarray:
    return (lo + (hi - lo) * u).astype(_F32)


class _Scenes:
    """Scene parameters for a batch, decoded from one row of uniforms per scene."""

    def __init__(self, uniforms: np.ndarray) -> None:
        u = uniforms.astype(_F32)
        n = len(u)
        s = u[:, :_N_SCENE]
        self.n = n
        self.room_w = _lerp(s[:, 4], 4.0, 6.0)
        self.room_d = _lerp(s[:, 5], 5.0, 7.0)
        height = _lerp(s[:, 0], 1.3, 1.9)
        pitch = np.deg2rad(_lerp(s[:, 1], 12.0, 28.0))
        yaw = np.deg2rad(_lerp(s[:, 2], -12.0, 12.0))
        self.cam = np.stack([_lerp(s[:, 3], -0.4, 0.4), height, np.zeros(n, _F32)], axis=1)
        cp, sp, cy, sy = np.cos(pitch), np.sin(pitch), np.cos(yaw), np.sin(yaw)
        self.fwd = np.stack([sy * cp, -sp, cy * cp], axis=1)
        self.right = np.stack([cy, np.zeros(n, _F32), -sy], axis=1)
        self.up = np.cross(self.fwd, self.right).astype(_F32)
        azim = np.deg2rad(_lerp(s[:, 6], -70.0, 70.0))
        elev = np.deg2rad(_lerp(s[:, 7], 35.0, 70.0))
        # Direction *towards* the light: above, somewhat behind the camera so fronts are lit.
        self.light = np.stack([np.sin(azim) * np.cos(elev), np.sin(elev), -np.cos(azim) * np.cos(elev)], axis=1)
        self.ambient = _lerp(s[:, 8], 0.25, 0.45)
        self.n_objects = (2 + np.minimum((s[:, 9] * 7).astype(np.int64), 6)).astype(np.int64)
        self.noise_sigma = _lerp(s[:, 10], 2.0, 6.0)
        self.cell_keys = s[:, 16:]
        self.plane_tex = u[:, _N_SCENE : _N_SCENE + _N_PLANES * _N_TEX].reshape(n, _N_PLANES, _N_TEX)
        o = u[:, _N_SCENE + _N_PLANES * _N_TEX :].reshape(n, MAX_OBJECTS, _N_OBJ)
        self.obj_tex = o[:, :, 8:]
        self.present = np.arange(MAX_OBJECTS)[None, :] < self.n_objects[:, None]
        self.kind = np.minimum((o[:, :, 0] * 4).astype(np.int64), 3)
        self._place(o)

    def _place(self, o: np.ndarray) -> None:
        """Objects stand on the floor in distinct cells of a grid, so they rarely interpenetrate."""
        n = self.n
        cells = np.argsort(self.cell_keys, axis=1)[:, :MAX_OBJECTS]  # distinct random cells
        col, row = cells % _GRID_COLS, cells // _GRID_COLS
        x0, x1 = -self.room_w / 2 + 0.55, self.room_w / 2 - 0.55
        z0, z1 = np.full(n, 1.9, _F32), self.room_d - 0.6
        cw = (x1 - x0) / _GRID_COLS
        ch = (z1 - z0) / _GRID_ROWS
        jitter_x, jitter_z = o[:, :, 2] - 0.5, o[:, :, 3] - 0.5
        self.cx = (x0[:, None] + cw[:, None] * (col + 0.5 + 0.3 * jitter_x)).astype(_F32)
        self.cz = (z0[:, None] + ch[:, None] * (row + 0.5 + 0.3 * jitter_z)).astype(_F32)
        limit = 0.5 * np.minimum(cw, ch)[:, None] * 0.95
        kind = self.kind
        # Per shape class: (lo, hi) of the horizontal radius (box: half-width) and of the height
        # parameter (box, cylinder: half-height; cone: height; sphere: unused).
        radius = _SIZES[kind, 0, 0] + (_SIZES[kind, 0, 1] - _SIZES[kind, 0, 0]) * o[:, :, 4]
        tall = _SIZES[kind, 1, 0] + (_SIZES[kind, 1, 1] - _SIZES[kind, 1, 0]) * o[:, :, 5]
        self.s1 = np.minimum(radius, limit).astype(_F32)
        self.s2 = tall.astype(_F32)
        self.s3 = np.minimum(_lerp(o[:, :, 6], 0.28, 0.6), limit).astype(_F32)  # box half-depth
        self.yaw = (o[:, :, 7] * np.pi).astype(_F32)


# ---------------------------------------------------------------------------------------------
# Ray/shape intersections. Origins and directions are component arrays broadcastable to [M, P];
# shape parameters are [M, 1]. Each returns t of the nearest hit in front of the origin, inf if none.


def _first_positive(t1: np.ndarray, ok1: np.ndarray, t2: np.ndarray, ok2: np.ndarray) -> np.ndarray:
    a = np.where(ok1 & (t1 > 1e-4), t1, np.inf)
    b = np.where(ok2 & (t2 > 1e-4), t2, np.inf)
    return np.minimum(a, b)


def _hit_sphere(ox, oy, oz, dx, dy, dz, cx, cy, cz, r):
    qx, qy, qz = ox - cx, oy - cy, oz - cz
    a = dx * dx + dy * dy + dz * dz
    b = qx * dx + qy * dy + qz * dz
    c = qx * qx + qy * qy + qz * qz - r * r
    disc = b * b - a * c
    ok = disc >= 0
    s = np.sqrt(np.maximum(disc, 0))
    return _first_positive((-b - s) / a, ok, (-b + s) / a, ok)


def _to_local(ox, oz, dx, dz, cx, cz, yaw):
    """Rotate into a frame turned by ``yaw`` about the vertical axis through (cx, cz)."""
    c, s = np.cos(yaw), np.sin(yaw)
    qx, qz = ox - cx, oz - cz
    return c * qx - s * qz, s * qx + c * qz, c * dx - s * dz, s * dx + c * dz


def _hit_box(ox, oy, oz, dx, dy, dz, cx, cy, cz, hx, hy, hz, yaw):
    lx, lz, ldx, ldz = _to_local(ox, oz, dx, dz, cx, cz, yaw)
    ly = oy - cy
    with np.errstate(divide="ignore", invalid="ignore"):
        near = np.full(np.broadcast(lx, ldx).shape, -np.inf, _F32)
        far = np.full_like(near, np.inf)
        for o, d, h in ((lx, ldx, hx), (ly, dy, hy), (lz, ldz, hz)):
            inv = 1.0 / d
            t1, t2 = (-h - o) * inv, (h - o) * inv
            near = np.maximum(near, np.minimum(t1, t2))
            far = np.minimum(far, np.maximum(t1, t2))
    ok = (far >= near) & ~np.isnan(near)
    return _first_positive(near, ok, far, ok & (near <= 1e-4))


def _hit_cylinder(ox, oy, oz, dx, dy, dz, cx, cz, r, h):
    qx, qz = ox - cx, oz - cz
    a = dx * dx + dz * dz
    b = qx * dx + qz * dz
    c = qx * qx + qz * qz - r * r
    disc = b * b - a * c
    s = np.sqrt(np.maximum(disc, 0))
    t1, t2 = (-b - s) / a, (-b + s) / a
    y1, y2 = oy + t1 * dy, oy + t2 * dy
    ok = disc >= 0
    side = _first_positive(t1, ok & (y1 >= 0) & (y1 <= h), t2, ok & (y2 >= 0) & (y2 <= h))
    with np.errstate(divide="ignore", invalid="ignore"):
        tc = (h - oy) / dy
    xc, zc = qx + tc * dx, qz + tc * dz
    cap = np.where((xc * xc + zc * zc <= r * r) & (tc > 1e-4), tc, np.inf)
    return np.minimum(side, cap)


def _hit_cone(ox, oy, oz, dx, dy, dz, cx, cz, r, h):
    k2 = (r / h) ** 2
    qx, qy, qz = ox - cx, oy - h, oz - cz  # relative to the apex
    a = dx * dx + dz * dz - k2 * dy * dy
    b = qx * dx + qz * dz - k2 * qy * dy
    c = qx * qx + qz * qz - k2 * qy * qy
    disc = b * b - a * c
    s = np.sqrt(np.maximum(disc, 0))
    with np.errstate(divide="ignore", invalid="ignore"):
        t1, t2 = (-b - s) / a, (-b + s) / a
    y1, y2 = qy + t1 * dy, qy + t2 * dy
    ok = disc >= 0
    return _first_positive(t1, ok & (y1 <= 0) & (y1 >= -h), t2, ok & (y2 <= 0) & (y2 >= -h))


def _hit_objects(sc: _Scenes, ox, oy, oz, dx, dy, dz, out: np.ndarray) -> None:
    """Write t of every present object into ``out[n, slot]`` ([N, K, P]); rays indexed by scene.

    Ray components are [N, P] (per pixel) or [N, 1] (one per scene); they are gathered per object.
    """
    for kind in (_SPHERE, _BOX, _CYLINDER, _CONE):
        n_i, k_i = np.nonzero(sc.present & (sc.kind == kind))
        if len(n_i) == 0:
            continue
        o = (ox[n_i], oy[n_i], oz[n_i])
        d = (dx[n_i], dy[n_i], dz[n_i])
        cx, cz = sc.cx[n_i, k_i, None], sc.cz[n_i, k_i, None]
        s1, s2, s3 = sc.s1[n_i, k_i, None], sc.s2[n_i, k_i, None], sc.s3[n_i, k_i, None]
        if kind == _SPHERE:
            t = _hit_sphere(*o, *d, cx, s1, cz, s1)
        elif kind == _BOX:
            t = _hit_box(*o, *d, cx, s2, cz, s1, s2, s3, sc.yaw[n_i, k_i, None])
        elif kind == _CYLINDER:
            t = _hit_cylinder(*o, *d, cx, cz, s1, s2)
        else:
            t = _hit_cone(*o, *d, cx, cz, s1, s2)
        out[n_i, k_i] = t


# ---------------------------------------------------------------------------------------------
# Surface normals (world frame) at hit points, for pixels whose nearest surface is an object.


def _object_normals(sc: _Scenes, n_i, k_i, px, py, pz):
    kind = sc.kind[n_i, k_i]
    cx, cz = sc.cx[n_i, k_i], sc.cz[n_i, k_i]
    s1, s2, s3 = sc.s1[n_i, k_i], sc.s2[n_i, k_i], sc.s3[n_i, k_i]
    qx, qz = px - cx, pz - cz
    nx, ny, nz = np.zeros_like(px), np.zeros_like(px), np.zeros_like(px)
    m = kind == _SPHERE
    nx[m], ny[m], nz[m] = qx[m], py[m] - s1[m], qz[m]
    m = kind == _CYLINDER
    top = m & (py >= s2 - 1e-3 * np.maximum(s2, 1.0))
    side = m & ~top
    nx[side], nz[side] = qx[side], qz[side]
    ny[top] = 1.0
    m = kind == _CONE
    k2 = (s1[m] / s2[m]) ** 2
    nx[m], ny[m], nz[m] = qx[m], -k2 * (py[m] - s2[m]), qz[m]
    m = kind == _BOX
    if m.any():
        yaw = sc.yaw[n_i[m], k_i[m]]
        c, s = np.cos(yaw), np.sin(yaw)
        lx, lz = c * qx[m] - s * qz[m], s * qx[m] + c * qz[m]
        ly = py[m] - s2[m]
        rel = np.stack([np.abs(lx) / s1[m], np.abs(ly) / s2[m], np.abs(lz) / s3[m]])
        axis = np.argmax(rel, axis=0)
        lnx = np.where(axis == 0, np.sign(lx), 0).astype(_F32)
        lny = np.where(axis == 1, np.sign(ly), 0).astype(_F32)
        lnz = np.where(axis == 2, np.sign(lz), 0).astype(_F32)
        nx[m], ny[m], nz[m] = c * lnx + s * lnz, lny, -s * lnx + c * lnz
    norm = np.sqrt(nx * nx + ny * ny + nz * nz)
    norm[norm == 0] = 1.0
    return nx / norm, ny / norm, nz / norm


# ---------------------------------------------------------------------------------------------
# Procedural textures: solid textures evaluated at the hit point, so they wrap any shape.


def _texture(tex: np.ndarray, px, py, pz) -> np.ndarray:
    """Albedo [..., 3] from per-pixel texture uniforms ``tex`` [..., _N_TEX] at points p.

    Uniform layout: 0 pattern (plain/stripes/checkers/noise), 1-3 colour A, 4-6 colour B,
    7 frequency, 8-9 direction angles, 10 phase, 11 spare. Colours come from the same
    distribution on every surface, so colour alone never gives the class away.
    """
    kind = np.minimum((tex[..., 0] * 4).astype(np.int64), 3)
    col_a = 0.12 + 0.83 * tex[..., 1:4]
    col_b = 0.12 + 0.83 * tex[..., 4:7]
    freq = 2.0 + 6.0 * tex[..., 7]
    th, ph = tex[..., 8] * np.pi, tex[..., 9] * 2 * np.pi
    ax, ay, az = np.sin(th) * np.cos(ph), np.cos(th), np.sin(th) * np.sin(ph)
    proj = px * ax + py * ay + pz * az
    stripes = (np.sin(freq * proj * np.pi + tex[..., 10] * 6.3) > 0).astype(_F32)
    f = freq * 0.8
    checks = ((np.floor(px * f) + np.floor(py * f) + np.floor(pz * f)) % 2).astype(_F32)
    # Turbulence-like noise: a few incommensurate waves along rotated directions.
    noise = (
        np.sin(freq * 1.7 * proj + 3.0 * np.sin(1.3 * freq * (px * az - pz * ax)))
        + np.sin(freq * 2.3 * (py * ax - px * ay) + tex[..., 10] * 6.3)
    ) * 0.25 + 0.5
    mix = np.where(kind == 1, stripes, np.where(kind == 2, checks, np.where(kind == 3, noise, 0.0)))
    return (col_a + (col_b - col_a) * mix[..., None]).astype(_F32)


# ---------------------------------------------------------------------------------------------


def _pixel_rays(sc: _Scenes, height: int, width: int):
    fx = width / (2.0 * np.tan(np.deg2rad(_HFOV_DEG) / 2))
    jj, ii = np.meshgrid(np.arange(width, dtype=_F32), np.arange(height, dtype=_F32))
    xn = ((jj.ravel() + 0.5 - width / 2) / fx).astype(_F32)[None, :]
    yn = ((ii.ravel() + 0.5 - height / 2) / fx).astype(_F32)[None, :]
    d = [sc.fwd[:, i, None] + xn * sc.right[:, i, None] - yn * sc.up[:, i, None] for i in range(3)]
    return d


def _hit_planes(sc: _Scenes, dx, dy, dz, out: np.ndarray) -> None:
    cx, cy, cz = (sc.cam[:, i, None] for i in range(3))
    with np.errstate(divide="ignore", invalid="ignore"):
        planes = (
            -cy / dy,  # floor y = 0
            (sc.room_d[:, None] - cz) / dz,  # back wall
            (-sc.room_w[:, None] / 2 - cx) / dx,  # left wall
            (sc.room_w[:, None] / 2 - cx) / dx,  # right wall
        )
    for slot, t in enumerate(planes):
        out[:, slot] = np.where(t > 0, t, np.inf)


_PLANE_NORMALS = np.array([[0, 1, 0], [0, 0, -1], [1, 0, 0], [-1, 0, 0]], _F32)


def render_batch(
    uniforms: np.ndarray, height: int, width: int, *, noise: np.ndarray | None = None, shadows: bool = True
) -> Rendered:
    """Render one scene per row of ``uniforms`` ([N, N_UNIFORMS] in [0, 1)).

    Args:
        uniforms: the scenes' random numbers; a row fully determines its scene.
        height: image rows.
        width: image columns.
        noise: standard-normal sensor noise [N, H, W, 3] (scaled per scene), or None for none.
        shadows: cast shadow rays towards the light (objects shadow the room and each other).

    Returns:
        The images and their exact labels.
    """
    sc = _Scenes(uniforms)
    n, p = sc.n, height * width
    dx, dy, dz = _pixel_rays(sc, height, width)
    tbuf = np.full((n, _N_PLANES + MAX_OBJECTS, p), np.inf, _F32)
    _hit_planes(sc, dx, dy, dz, tbuf)
    cam = [sc.cam[:, i, None] for i in range(3)]
    _hit_objects(sc, *cam, dx, dy, dz, tbuf[:, _N_PLANES:])
    inst = np.argmin(tbuf, axis=1)  # [N, P]
    depth = np.take_along_axis(tbuf, inst[:, None], axis=1)[:, 0]
    px, py, pz = cam[0] + depth * dx, cam[1] + depth * dy, cam[2] + depth * dz

    # World normals and texture uniforms per pixel.
    nx, ny, nz = np.zeros((3, n, p), _F32)
    tex = np.empty((n, p, _N_TEX), _F32)
    planes = inst < _N_PLANES
    pn, pp = np.nonzero(planes)
    slot = inst[pn, pp]
    nx[pn, pp], ny[pn, pp], nz[pn, pp] = _PLANE_NORMALS[slot].T
    tex[pn, pp] = sc.plane_tex[pn, slot]
    on, op = np.nonzero(~planes)
    ok = inst[on, op] - _N_PLANES
    nx[on, op], ny[on, op], nz[on, op] = _object_normals(sc, on, ok, px[on, op], py[on, op], pz[on, op])
    tex[on, op] = sc.obj_tex[on, ok]
    # Object textures live in the object's own frame so that they move with it.
    lx, ly, lz = px.copy(), py.copy(), pz.copy()
    lx[on, op] -= sc.cx[on, ok]
    lz[on, op] -= sc.cz[on, ok]
    albedo = _texture(tex, lx, ly, lz)

    lgt = [sc.light[:, i, None] for i in range(3)]
    lambert = np.maximum(nx * lgt[0] + ny * lgt[1] + nz * lgt[2], 0)
    if shadows:
        sbuf = np.full((n, MAX_OBJECTS, p), np.inf, _F32)
        eps = 1e-3
        _hit_objects(sc, px + eps * nx, py + eps * ny, pz + eps * nz, *lgt, sbuf)
        lambert = lambert * (np.min(sbuf, axis=1) == np.inf)
    shade = sc.ambient[:, None] + (1.0 - sc.ambient[:, None]) * lambert
    image = (albedo * shade[..., None]).reshape(n, height, width, 3) * 255.0
    if noise is not None:
        image += noise * sc.noise_sigma[:, None, None, None]
    image = np.clip(image + 0.5, 0, 255).astype(np.uint8)

    # Camera-frame normals: rows of the world->camera rotation are right, down, forward.
    rot = np.stack([sc.right, -sc.up, sc.fwd], axis=1)  # [N, 3, 3]
    normals = np.stack(
        [rot[:, i, 0, None] * nx + rot[:, i, 1, None] * ny + rot[:, i, 2, None] * nz for i in range(3)], axis=-1
    )

    classes = np.concatenate([np.array([1, 0, 0, 0]), np.zeros(MAX_OBJECTS, np.int64)])
    cls_table = np.broadcast_to(classes, (n, len(classes))).copy()
    cls_table[:, _N_PLANES:] = 2 + sc.kind
    semseg = np.take_along_axis(cls_table, inst, axis=1)

    shape = (n, height, width)
    inst2 = inst.reshape(shape)
    depth2 = depth.reshape(shape)
    edges = _edges(inst2)
    return Rendered(
        image=image,
        semseg=semseg.reshape(shape).astype(np.uint8),
        depth=depth2.astype(_F32),
        normals=normals.reshape(*shape, 3).astype(_F32),
        edges=edges,
        instance=inst2.astype(np.uint8),
    )


def _edges(inst: np.ndarray) -> np.ndarray:
    """One-pixel-wide boundaries: a pixel is an edge where its right or lower neighbour belongs to
    another instance (object, floor or one of the walls).

    Depth discontinuities are included by construction: every shape is convex and the room is
    convex, so depth only jumps where one instance occludes another. A threshold on the relative
    depth step would instead fire on the far floor at grazing angles, more so at low resolution.
    """
    edge = np.zeros(inst.shape, bool)
    edge[:, :, :-1] |= inst[:, :, :-1] != inst[:, :, 1:]
    edge[:, :-1] |= inst[:, :-1] != inst[:, 1:]
    return edge.astype(np.uint8)
