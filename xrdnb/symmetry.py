r"""Symmetry projectors 𝒫 by crystal family (SI §1.3).

A projector maps lattice parameters ``(..., 6)`` = ``(a, b, c, α, β, γ)`` (lengths in Å,
angles in degrees) onto parameters consistent with the given crystal family: lengths that
the family makes equal are replaced by their mean, angles the family fixes are set to
their fixed values, and free parameters pass through unchanged.

.. math::

   \begin{aligned}
   \mathcal{P}_{\text{cubic}}(a, b, c, \alpha, \beta, \gamma)
       &= (\bar a, \bar a, \bar a, 90^\circ, 90^\circ, 90^\circ),
       & \bar a &= \tfrac{1}{3}(a + b + c) \\
   \mathcal{P}_{\text{hexagonal}}(a, b, c, \alpha, \beta, \gamma)
       &= (\bar a, \bar a, c, 90^\circ, 90^\circ, 120^\circ),
       & \bar a &= \tfrac{1}{2}(a + b) \\
   \mathcal{P}_{\text{tetragonal}}(a, b, c, \alpha, \beta, \gamma)
       &= (\bar a, \bar a, c, 90^\circ, 90^\circ, 90^\circ),
       & \bar a &= \tfrac{1}{2}(a + b) \\
   \mathcal{P}_{\text{orthorhombic}}(a, b, c, \alpha, \beta, \gamma)
       &= (a, b, c, 90^\circ, 90^\circ, 90^\circ) \\
   \mathcal{P}_{\text{monoclinic}}(a, b, c, \alpha, \beta, \gamma)
       &= (a, b, c, 90^\circ, \beta, 90^\circ) \\
   \mathcal{P}_{\text{triclinic}}(a, b, c, \alpha, \beta, \gamma)
       &= (a, b, c, \alpha, \beta, \gamma)
   \end{aligned}

The family names are those of :data:`xrdnb.vocabulary.CRYSTAL_FAMILIES`. Trigonal and
rhombohedral structures belong to the hexagonal family in their hexagonal setting, so
``"trigonal"`` is accepted as an alias of ``"hexagonal"`` (a choice of this project, book/study-protocol.md). The
projectors assume the conventional standard setting: for monoclinic cells the unique axis
is b (β free), for hexagonal cells γ = 120°.

Every projector is idempotent (𝒫∘𝒫 = 𝒫), leaves lattices already in the family unchanged,
is differentiable (gradients flow to the averaged lengths; fixed angles have zero
gradient), and works on any leading batch shape, device and floating dtype without
modifying its input.

In the constrained ("cosine + constraints") gradient-descent runs of the study, 𝒫 is
applied to the distorted starting lattice and again after every optimizer update.
"""

from __future__ import annotations

import torch

from .structures import CRYSTAL_FAMILIES

__all__ = [
    "FAMILY_ALIASES",
    "canonical_family",
    "free_parameters",
    "TIED_PARAMETERS",
    "project_lattice",
    "is_in_family",
]

FAMILY_ALIASES = {"trigonal": "hexagonal", "rhombohedral": "hexagonal"}
"""Other names accepted for a family (trigonal/rhombohedral cells in the hexagonal setting)."""

_FREE = {
    "cubic": ("a",),
    "hexagonal": ("a", "c"),
    "tetragonal": ("a", "c"),
    "orthorhombic": ("a", "b", "c"),
    "monoclinic": ("a", "b", "c", "beta"),
    "triclinic": ("a", "b", "c", "alpha", "beta", "gamma"),
}

TIED_PARAMETERS: dict[str, dict[str, tuple[str, ...]]] = {
    "cubic": {"a": ("a", "b", "c")},
    "hexagonal": {"a": ("a", "b"), "c": ("c",)},
    "tetragonal": {"a": ("a", "b"), "c": ("c",)},
}
"""Free parameter of a family → the parameters 𝒫 keeps equal to it (its symmetry axis).

Only the families that tie lengths together are listed (cubic ā: a = b = c; hexagonal and
tetragonal ā: a = b); any other free parameter moves alone. A point that moves a free
parameter together with its tied partners stays a fixed point of :func:`project_lattice`
(e.g. the symmetry-axis cuts of :func:`xrdnb.landscape.lattice_cut`).
"""


def canonical_family(family: str) -> str:
    """The family name of :data:`xrdnb.vocabulary.CRYSTAL_FAMILIES` for ``family``.

    Parameters
    ----------
    family
        a crystal family (case-insensitive) or an alias of :data:`FAMILY_ALIASES`.

    Returns
    -------
    str
        one of ``CRYSTAL_FAMILIES``.

    Raises
    ------
    ValueError
        if ``family`` is not a known family or alias; the message lists the valid names.
    """
    name = family.strip().lower() if isinstance(family, str) else family
    name = FAMILY_ALIASES.get(name, name)
    if name not in CRYSTAL_FAMILIES:
        valid = ", ".join(CRYSTAL_FAMILIES + tuple(FAMILY_ALIASES))
        raise ValueError(f"unknown crystal family {family!r}; valid families: {valid}")
    return name


def free_parameters(family: str) -> tuple[str, ...]:
    """Names of the lattice parameters the family leaves free after projection.

    Parameters
    ----------
    family
        crystal family (or alias).

    Returns
    -------
    tuple of str
        a subset of ``("a", "b", "c", "alpha", "beta", "gamma")`` in that order, e.g.
        ``("a",)`` for cubic, ``("a", "c")`` for hexagonal and tetragonal,
        ``("a", "b", "c", "beta")`` for monoclinic.

    Examples
    --------
    >>> free_parameters("hexagonal")
    ('a', 'c')
    >>> free_parameters("trigonal")
    ('a', 'c')
    """
    return _FREE[canonical_family(family)]


def project_lattice(lattice: torch.Tensor, family: str) -> torch.Tensor:
    """Apply the symmetry projector 𝒫 of ``family`` (SI §1.3, module docstring).

    Parameters
    ----------
    lattice
        lattice parameters ``(..., 6)``: a, b, c (Å), α, β, γ (degrees).
    family
        crystal family (or alias, e.g. ``"trigonal"`` → hexagonal).

    Returns
    -------
    Tensor
        projected lattice parameters ``(..., 6)``, same dtype and device; a new tensor
        (the input is never modified), differentiable with respect to ``lattice``.

    Raises
    ------
    ValueError
        for an unknown family or a last dimension other than 6.

    Examples
    --------
    >>> import torch
    >>> project_lattice(torch.tensor([4.0, 4.2, 7.0, 91.0, 89.0, 121.0]), "hexagonal")
    tensor([  4.1000,   4.1000,   7.0000,  90.0000,  90.0000, 120.0000])
    """
    name = canonical_family(family)
    if lattice.shape[-1] != 6:
        raise ValueError(f"lattice parameters must have last dimension 6, got shape {tuple(lattice.shape)}")
    if name == "triclinic":
        return lattice.clone()
    a, b, c, alpha, beta, gamma = lattice.unbind(-1)
    right = torch.full_like(a, 90.0)
    if name == "cubic":
        mean = (a + b + c) / 3.0
        parts = (mean, mean, mean, right, right, right)
    elif name == "hexagonal":
        mean = (a + b) / 2.0
        parts = (mean, mean, c, right, right, torch.full_like(a, 120.0))
    elif name == "tetragonal":
        mean = (a + b) / 2.0
        parts = (mean, mean, c, right, right, right)
    elif name == "orthorhombic":
        parts = (a, b, c, right, right, right)
    else:  # monoclinic, unique axis b
        parts = (a, b, c, right, beta, right)
    return torch.stack(parts, dim=-1)


def is_in_family(lattice: torch.Tensor, family: str, atol: float = 1e-6) -> torch.Tensor:
    """Whether lattice parameters already satisfy the constraints of ``family``.

    Parameters
    ----------
    lattice
        lattice parameters ``(..., 6)``: a, b, c (Å), α, β, γ (degrees).
    family
        crystal family (or alias).
    atol
        largest allowed ``|𝒫(x) − x|`` per parameter, in Å for lengths and degrees for
        angles.

    Returns
    -------
    Tensor
        boolean mask ``(...)``: ``True`` where ``lattice`` is a fixed point of 𝒫 within
        ``atol`` (non-finite parameters give ``False``).
    """
    deviation = (project_lattice(lattice.detach(), family) - lattice.detach()).abs()
    return (deviation <= atol).all(dim=-1) & torch.isfinite(lattice.detach()).all(dim=-1)
