"""Batched crystal tensors: the state every later stage works on.

A :class:`Crystal` holds ``B`` copies of one structure (same sites and species, each
with its own lattice and coordinates):

- ``lattice`` ``(B, 6)``: a, b, c (Å), α, β, γ (degrees);
- ``frac_coords`` ``(B, N, 3)``: fractional coordinates of the N sites;
- ``occupancy`` ``(N, S)``: occupancy of element ``elements[s]`` on site ``n``;
- ``elements``: the S element symbols.

Partially occupied sites are one site with several non-zero occupancies.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch
from pymatgen.core import Lattice, Structure

from .structures import check_structure

__all__ = ["Crystal", "crystal_from_structure"]


@dataclass(frozen=True)
class Crystal:
    """``B`` copies of one crystal as tensors (see the module docstring for shapes)."""

    lattice: torch.Tensor
    frac_coords: torch.Tensor
    occupancy: torch.Tensor
    elements: tuple[str, ...]

    def __post_init__(self):
        b, n = self.frac_coords.shape[0], self.frac_coords.shape[1]
        if self.lattice.shape != (b, 6):
            raise ValueError(f"lattice must be (B, 6) = ({b}, 6), got {tuple(self.lattice.shape)}")
        if self.frac_coords.shape != (b, n, 3):
            raise ValueError(f"frac_coords must be (B, N, 3), got {tuple(self.frac_coords.shape)}")
        if self.occupancy.shape != (n, len(self.elements)):
            raise ValueError(
                f"occupancy must be (N, S) = ({n}, {len(self.elements)}), got {tuple(self.occupancy.shape)}"
            )

    @property
    def batch_size(self) -> int:
        """Number of copies ``B`` in the batch."""
        return int(self.lattice.shape[0])

    @property
    def n_sites(self) -> int:
        """Number of sites ``N`` per copy."""
        return int(self.frac_coords.shape[1])

    @property
    def dtype(self) -> torch.dtype:
        """Floating dtype of the lattice parameters (and of the coordinates)."""
        return self.lattice.dtype

    @property
    def device(self) -> torch.device:
        """Device the lattice parameters live on."""
        return self.lattice.device

    def with_lattice(self, lattice: torch.Tensor) -> Crystal:
        """The same crystal with new lattice parameters ``(B, 6)`` (batch size may change if coordinates broadcast)."""
        coords = self.frac_coords
        if lattice.shape[0] != coords.shape[0]:
            coords = coords[:1].expand(lattice.shape[0], -1, -1)
        return replace(self, lattice=lattice, frac_coords=coords)

    def with_frac_coords(self, frac_coords: torch.Tensor) -> Crystal:
        """The same crystal with new fractional coordinates ``(B, N, 3)``."""
        lattice = self.lattice
        if frac_coords.shape[0] != lattice.shape[0]:
            lattice = lattice[:1].expand(frac_coords.shape[0], -1)
        return replace(self, lattice=lattice, frac_coords=frac_coords)

    def repeat(self, batch_size: int) -> Crystal:
        """``batch_size`` copies of the first crystal of the batch."""
        return replace(
            self,
            lattice=self.lattice[:1].repeat(batch_size, 1),
            frac_coords=self.frac_coords[:1].repeat(batch_size, 1, 1),
        )

    def select(self, index) -> Crystal:
        """The copies at ``index`` (an int, slice, list or boolean mask) as a new batch."""
        if isinstance(index, int):
            index = [index]
        return replace(self, lattice=self.lattice[index], frac_coords=self.frac_coords[index])

    def to(self, device=None, dtype=None) -> Crystal:
        """The same crystal with its lattice, coordinates and occupancies moved to ``device``/``dtype``."""
        return replace(
            self,
            lattice=self.lattice.to(device=device, dtype=dtype),
            frac_coords=self.frac_coords.to(device=device, dtype=dtype),
            occupancy=self.occupancy.to(device=device, dtype=dtype),
        )

    def detach(self) -> Crystal:
        """The same crystal with lattice and coordinates detached from the autograd graph."""
        return replace(self, lattice=self.lattice.detach(), frac_coords=self.frac_coords.detach())

    def to_structures(self) -> list[Structure]:
        """One pymatgen ``Structure`` per copy (lattice from parameters, pymatgen's setting)."""
        lattice = self.lattice.detach().cpu().double().numpy()
        coords = self.frac_coords.detach().cpu().double().numpy()
        occupancy = self.occupancy.detach().cpu().double().numpy()
        species = [{el: float(occ) for el, occ in zip(self.elements, row, strict=True) if occ > 0} for row in occupancy]
        return [
            Structure(Lattice.from_parameters(*lat), species, xyz, coords_are_cartesian=False)
            for lat, xyz in zip(lattice, coords, strict=True)
        ]


def crystal_from_structure(
    structure: Structure,
    batch_size: int = 1,
    *,
    dtype: torch.dtype = torch.float64,
    device=None,
) -> Crystal:
    """Tensors of ``batch_size`` identical copies of a pymatgen ``Structure``.

    >>> from xrdnb import load_structure
    >>> c = crystal_from_structure(load_structure("BPO4"), batch_size=4)
    >>> tuple(c.lattice.shape), tuple(c.frac_coords.shape), c.elements
    ((4, 6), (4, 12, 3), ('B', 'P', 'O'))
    """
    check_structure(structure)
    elements: list[str] = []
    for site in structure:
        for sp in site.species:
            if sp.symbol not in elements:
                elements.append(sp.symbol)
    occupancy = np.zeros((len(structure), len(elements)))
    for n, site in enumerate(structure):
        for sp, occ in site.species.items():
            occupancy[n, elements.index(sp.symbol)] += occ
    kw = dict(dtype=dtype, device=device)
    lattice = torch.tensor(structure.lattice.parameters, **kw).repeat(batch_size, 1)
    coords = torch.tensor(structure.frac_coords, **kw).unsqueeze(0).repeat(batch_size, 1, 1)
    return Crystal(lattice, coords, torch.tensor(occupancy, **kw), tuple(elements))
