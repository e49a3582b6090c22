"""Molecules for text–molecule retrieval (ORMA, issue 8): motif decomposition and the hierarchical
heterogeneous graph.  The ChEBI-20 loader and the generated corpus are in :mod:`.data`.

Needs RDKit: ``pip install 'monge[orma]'``.  Everything here returns NumPy arrays (plain tensors);
:mod:`.model` batches them for PyTorch.

Motif decomposition (:func:`motifs`), the exact rule
----------------------------------------------------
ORMA decomposes a molecule by breaking its BRICS bonds, splitting ring systems into rings and
merging cliques.  Here, on the heavy-atom graph:

1. Rings: every ring of RDKit's smallest set of smallest rings (SSSR) is a clique.  Rings that share
   three or more atoms (bridged systems such as norbornane or adamantane) are merged into one clique,
   repeatedly until no two cliques share more than two atoms.  Fused rings (sharing one bond) stay
   separate motifs: naphthalene gives two six-membered rings that share two atoms.
2. Chains: the atoms in no ring, joined by the bonds that are neither in a ring nor BRICS bonds
   (``rdkit.Chem.BRICS.FindBRICSBonds``), form connected components; each component is one clique
   (the two-atom cliques of its bonds merged).  Bonds between a ring atom and a non-ring atom are
   always cut, so a substituent is its own motif (the OH of phenol is the motif {O}).
3. Every atom is in at least one motif; an atom shared by fused rings is in each of them.  A molecule
   without bonds (a single atom or ion) has one motif per atom.

Motifs are ordered by their smallest atom index; each is a sorted tuple of atom indices.

Hierarchical heterogeneous graph (:func:`mol_graph`)
----------------------------------------------------
Nodes: the n atoms (0..n-1), the m motifs (n..n+m-1) and one molecule node (n+m).  Edges (stored
directed, both ways, in :meth:`MolGraph.hetero_edges`): atom–atom bonds (types single, double,
triple, aromatic), atom→motif membership and motif→molecule.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ... import _io

try:
    from rdkit import Chem, RDLogger
    from rdkit.Chem import BRICS
except ImportError as exc:  # pragma: no cover - the module needs the orma extra
    raise ImportError("monge.experiments.orma.chem needs RDKit: pip install 'monge[orma]'") from exc

__all__ = ["motifs", "mol_graph", "morgan_counts", "MolGraph", "MAX_SMILES_LENGTH", "ATOM_FEATURES",
           "MOTIF_FEATURES", "EDGE_TYPES"]

# ------------------------------------------------------------------ features

_ELEMENTS = (6, 7, 8, 9, 15, 16, 17, 35, 53, 5, 14, 34, 11, 19, 3, 12, 20, 26, 29, 30)
_HYBRID = (Chem.HybridizationType.SP, Chem.HybridizationType.SP2, Chem.HybridizationType.SP3,
           Chem.HybridizationType.SP3D, Chem.HybridizationType.SP3D2)
#: categorical atom features (column, number of categories); the last category of each is "other"
ATOM_FEATURES = (("element", len(_ELEMENTS) + 1), ("degree", 7), ("formal_charge", 6),
                 ("num_hs", 6), ("aromatic", 2), ("hybridization", len(_HYBRID) + 1),
                 ("in_ring", 2))
#: categorical motif features: kind (0 aromatic ring, 1 aliphatic ring, 2 chain, 3 merged/bridged
#: rings), size (1..11, 12 for larger), heteroatoms present (0/1)
MOTIF_FEATURES = (("kind", 4), ("size", 13), ("hetero", 2))
#: edge types of the hierarchical graph
EDGE_TYPES = ("single", "double", "triple", "aromatic", "atom-motif", "motif-molecule")
_BOND = {Chem.BondType.SINGLE: 0, Chem.BondType.DOUBLE: 1, Chem.BondType.TRIPLE: 2,
         Chem.BondType.AROMATIC: 3}


def _cat(value, options):
    try:
        return options.index(value)
    except ValueError:
        return len(options)


def _atom_features(atom):
    return (_cat(atom.GetAtomicNum(), _ELEMENTS), min(atom.GetDegree(), 6),
            min(max(atom.GetFormalCharge(), -2), 3) + 2, min(atom.GetTotalNumHs(), 5),
            int(atom.GetIsAromatic()), _cat(atom.GetHybridization(), _HYBRID), int(atom.IsInRing()))


#: longest SMILES accepted (characters).  RDKit's parse time grows quadratically with the length
#: (32 000 characters of fused rings take seconds, 160 000 minutes), and writing SMILES recurses
#: once per atom of a chain: Chem.MolToSmiles of a 19 000-atom chain overflows an 8 MB stack and
#: crashes the process (10 000 atoms already do on a 2 MB thread stack).  ChEBI-20's are far shorter.
MAX_SMILES_LENGTH = 5_000


def _as_mol(mol, name="mol"):
    if isinstance(mol, str):
        if len(mol) > MAX_SMILES_LENGTH:
            raise ValueError(f"{name}: SMILES of {len(mol)} characters (at most MAX_SMILES_LENGTH = "
                             f"{MAX_SMILES_LENGTH})")
        try:
            mol.encode("utf-8")  # RDKit takes UTF-8: lone surrogates (undecodable bytes) cannot pass
        except UnicodeEncodeError as exc:
            raise ValueError(f"{name}: invalid SMILES {_io.show(mol)} (character {exc.start} is not "
                             "encodable as UTF-8)") from None
        RDLogger.DisableLog("rdApp.*")   # RDKit's parse warnings go to stderr; errors are raised here
        try:
            m = Chem.MolFromSmiles(mol)
        finally:
            RDLogger.EnableLog("rdApp.*")
        if m is None:
            raise ValueError(f"{name}: invalid SMILES {_io.show(mol)}")
        return m
    if isinstance(mol, Chem.Mol):
        return mol
    raise TypeError(f"{name}: expected a SMILES string or an rdkit Mol, got {type(mol).__name__}")


# ------------------------------------------------------------------ motifs


def motifs(mol):
    """Motifs of a molecule (SMILES or rdkit Mol) by the rule in the module docstring: a list of
    sorted tuples of heavy-atom indices, ordered by their smallest index."""
    mol = _as_mol(mol)
    n = mol.GetNumAtoms()
    if n == 0:
        raise ValueError("mol: the molecule has no atoms")
    # 1. rings, bridged ones merged
    rings = [set(r) for r in Chem.GetSymmSSSR(mol)]
    merged = True
    while merged:
        merged = False
        for i in range(len(rings)):
            for j in range(i + 1, len(rings)):
                if len(rings[i] & rings[j]) > 2:
                    rings[i] |= rings.pop(j)
                    merged = True
                    break
            if merged:
                break
    # 2. chains: non-ring atoms joined by non-ring, non-BRICS bonds
    brics = {frozenset(b) for b, _ in BRICS.FindBRICSBonds(mol)}
    in_ring = [a.IsInRing() for a in mol.GetAtoms()]
    parent = list(range(n))

    def find(i):
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for b in mol.GetBonds():
        i, j = b.GetBeginAtomIdx(), b.GetEndAtomIdx()
        if not in_ring[i] and not in_ring[j] and frozenset((i, j)) not in brics:
            parent[find(i)] = find(j)
    chains = {}
    for i in range(n):
        if not in_ring[i]:
            chains.setdefault(find(i), set()).add(i)
    out = [tuple(sorted(c)) for c in list(chains.values()) + rings]
    return sorted(out, key=lambda c: (c[0], len(c), c))


def _motif_features(mol, motif, n_rings_merged):
    atoms = [mol.GetAtomWithIdx(i) for i in motif]
    ring = atoms[0].IsInRing() and len(motif) > 2 and all(a.IsInRing() for a in atoms)
    if ring and n_rings_merged > 1:
        kind = 3
    elif ring:
        kind = 0 if all(a.GetIsAromatic() for a in atoms) else 1
    else:
        kind = 2
    hetero = int(any(a.GetAtomicNum() != 6 for a in atoms))
    return (kind, min(len(motif), 12), hetero)


@dataclass
class MolGraph:
    """The hierarchical heterogeneous graph of one molecule, as NumPy arrays.

    atom_x       (n, 7) int64 categorical atom features (:data:`ATOM_FEATURES`)
    bond_index   (2, 2b) int64 atom pairs, each bond in both directions
    bond_type    (2b,) int64 in 0..3 (single, double, triple, aromatic)
    motifs       list of m sorted atom-index tuples (:func:`motifs`)
    motif_x      (m, 3) int64 categorical motif features (:data:`MOTIF_FEATURES`)
    atom_motif   (2, k) int64 rows (atom index, motif index): the atom→motif edges
    motif_mol    (2, m) int64 rows (motif index, 0): the motif→molecule edges
    """

    smiles: str
    atom_x: np.ndarray
    bond_index: np.ndarray
    bond_type: np.ndarray
    motifs: list
    motif_x: np.ndarray
    atom_motif: np.ndarray
    motif_mol: np.ndarray

    @property
    def n_atoms(self):
        return int(self.atom_x.shape[0])

    @property
    def n_motifs(self):
        return int(self.motif_x.shape[0])

    def hetero_edges(self):
        """Edges of the whole graph over nodes atoms (0..n-1), motifs (n..n+m-1), molecule (n+m):
        (edge_index (2, E) source→target, edge_type (E,) indexing :data:`EDGE_TYPES`), with
        atom→motif and motif→molecule edges in both directions."""
        n, m = self.n_atoms, self.n_motifs
        am = np.stack([self.atom_motif[0], self.atom_motif[1] + n])
        mm = np.stack([self.motif_mol[0] + n, self.motif_mol[1] + n + m])
        index = np.concatenate([self.bond_index, am, am[::-1], mm, mm[::-1]], axis=1)
        etype = np.concatenate([self.bond_type, np.full(2 * am.shape[1], 4),
                                np.full(2 * mm.shape[1], 5)])
        return index.astype(np.int64), etype.astype(np.int64)


def mol_graph(mol):
    """The :class:`MolGraph` of a molecule (SMILES or rdkit Mol; hydrogens implicit)."""
    mol = _as_mol(mol)
    mots = motifs(mol)
    n_sssr = {}
    sssr = [set(r) for r in Chem.GetSymmSSSR(mol)]
    for k, mt in enumerate(mots):
        n_sssr[k] = sum(1 for r in sssr if r <= set(mt))
    atom_x = np.array([_atom_features(a) for a in mol.GetAtoms()], dtype=np.int64)
    src, dst, bt = [], [], []
    for b in mol.GetBonds():
        i, j = b.GetBeginAtomIdx(), b.GetEndAtomIdx()
        t = _BOND.get(b.GetBondType(), 0)
        src += [i, j]
        dst += [j, i]
        bt += [t, t]
    am = [(a, k) for k, mt in enumerate(mots) for a in mt]
    return MolGraph(
        smiles=Chem.MolToSmiles(mol),
        atom_x=atom_x,
        bond_index=np.array([src, dst], dtype=np.int64).reshape(2, -1),
        bond_type=np.array(bt, dtype=np.int64),
        motifs=mots,
        motif_x=np.array([_motif_features(mol, mt, n_sssr[k]) for k, mt in enumerate(mots)],
                         dtype=np.int64).reshape(-1, 3),
        atom_motif=np.array(am, dtype=np.int64).T.reshape(2, -1),
        motif_mol=np.stack([np.arange(len(mots)), np.zeros(len(mots), dtype=np.int64)]).astype(np.int64),
    )


def morgan_counts(mols, radius=2, n_bits=2048):
    """Folded Morgan (ECFP-like) count fingerprints of ``mols`` (SMILES or rdkit Mols): an
    (N, n_bits) uint16 array, counts clipped at 65535.  The input of the fingerprint-MLP baseline."""
    from rdkit.Chem import rdFingerprintGenerator

    if int(radius) < 0 or int(n_bits) < 1:
        raise ValueError(f"radius, n_bits: expected radius >= 0 and n_bits >= 1, got {radius}, {n_bits}")
    gen = rdFingerprintGenerator.GetMorganGenerator(radius=int(radius), fpSize=int(n_bits))
    out = np.zeros((len(mols), int(n_bits)), dtype=np.uint16)
    for k, m in enumerate(mols):
        out[k] = np.minimum(gen.GetCountFingerprintAsNumPy(_as_mol(m, f"mols[{k}]")), 65535)
    return out
