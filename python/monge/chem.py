"""Molecules for text–molecule retrieval (ORMA, issue 8): motif decomposition, the hierarchical
heterogeneous graph, the ChEBI-20 loader and a small generated text–molecule corpus.

Needs RDKit: ``pip install 'monge[orma]'``.  Everything here returns NumPy arrays (plain tensors);
:mod:`monge.orma` batches them for PyTorch.

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

import os
from dataclasses import dataclass, field

import numpy as np

from . import _io
from ._io import DataFormatError

try:
    from rdkit import Chem, RDLogger
    from rdkit.Chem import BRICS, rdMolDescriptors
except ImportError as exc:  # pragma: no cover - the module needs the orma extra
    raise ImportError("monge.chem needs RDKit: pip install 'monge[orma]'") from exc

__all__ = ["motifs", "mol_graph", "MolGraph", "ChEBI20", "load_chebi20", "write_chebi20",
           "generated_corpus", "describe", "MAX_SMILES_LENGTH", "ATOM_FEATURES", "MOTIF_FEATURES",
           "EDGE_TYPES"]

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


# ------------------------------------------------------------------ ChEBI-20

_HEADER = ("CID", "SMILES", "description")


@dataclass
class ChEBI20:
    """Text–molecule pairs: cids (int), SMILES and descriptions (lists of equal length);
    skipped: (line number, CID, SMILES) of rows whose SMILES RDKit could not parse (with
    ``invalid='skip'``)."""

    path: str
    cids: list
    smiles: list
    descriptions: list
    skipped: list = field(default_factory=list)

    def __len__(self):
        return len(self.cids)


def load_chebi20(path, *, invalid="raise", check_smiles=True):
    """Read a ChEBI-20 split as MolT5 ships it: UTF-8, tab-separated ``CID``, ``SMILES``,
    ``description`` with that header line (LF or CRLF line ends; a byte-order mark is ignored).

    Malformed content (bytes that are not UTF-8, a wrong header, a wrong number of fields, a CID that
    is not a positive integer of ASCII digits, an empty SMILES or description, a SMILES longer than
    :data:`MAX_SMILES_LENGTH` characters, a repeated CID) raises :class:`monge._io.DataFormatError`
    (a ValueError) whose message starts with ``"{path}:{line}: "``.  SMILES RDKit cannot parse:
    ``invalid='raise'`` (the same error) or ``'skip'`` (dropped and listed in ``.skipped``).  Blank
    lines are ignored.  Reads only ``path``."""
    if invalid not in ("raise", "skip"):
        raise ValueError(f"invalid: expected 'raise' or 'skip', got {invalid!r}")
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path: expected a file path, got {type(path).__name__}")
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ValueError(f"path: no such file {path!r}")
    lines = _io.text_lines(_io.decode_utf8(path, _io.read_bytes(path)))
    if not lines or tuple(lines[0].split("\t")) != _HEADER:
        raise DataFormatError(path, 1, "expected the header 'CID<TAB>SMILES<TAB>description', got "
                                       + _io.show(lines[0] if lines else ""))
    out = ChEBI20(path, [], [], [])
    seen = {}
    RDLogger.DisableLog("rdApp.*")
    try:
        for lineno, line in enumerate(lines[1:], start=2):
            if not line.strip():
                continue
            parts = line.split("\t")
            if len(parts) != 3:
                raise DataFormatError(path, lineno, "expected 3 tab-separated fields (CID, SMILES, "
                                                    f"description), got {len(parts)}")
            cid, smi, desc = (p.strip() for p in parts)
            cid = _io.parse_int(path, lineno, "CID", cid)
            if not smi:
                raise DataFormatError(path, lineno, "empty SMILES")
            if len(smi) > MAX_SMILES_LENGTH:
                raise DataFormatError(path, lineno, f"SMILES of {len(smi)} characters (at most "
                                                    f"MAX_SMILES_LENGTH = {MAX_SMILES_LENGTH})")
            if not desc:
                raise DataFormatError(path, lineno, "empty description")
            if cid in seen:
                raise DataFormatError(path, lineno, f"CID {cid} repeats line {seen[cid]}")
            seen[cid] = lineno
            if check_smiles and Chem.MolFromSmiles(smi) is None:
                if invalid == "raise":
                    raise DataFormatError(path, lineno, f"RDKit cannot parse the SMILES "
                                                        f"{_io.show(smi)} (pass invalid='skip' to "
                                                        "drop such rows)")
                out.skipped.append((lineno, cid, smi))
                continue
            out.cids.append(cid)
            out.smiles.append(smi)
            out.descriptions.append(desc)
    finally:
        RDLogger.EnableLog("rdApp.*")
    return out


def write_chebi20(path, cids, smiles, descriptions):
    """Write pairs in the ChEBI-20 format (used for fixtures of the generated corpus)."""
    if not (len(cids) == len(smiles) == len(descriptions)):
        raise ValueError("cids, smiles, descriptions: lengths differ")
    with open(path, "w", encoding="utf-8", newline="") as fh:
        fh.write("\t".join(_HEADER) + "\n")
        for c, s, d in zip(cids, smiles, descriptions):
            if any(ch in str(x) for x in (c, s, d) for ch in "\t\n\r"):
                raise ValueError(f"descriptions: row with CID {c} contains a tab or line break")
            fh.write(f"{c}\t{s}\t{d}\n")


# ------------------------------------------------------------------ generated corpus

_SCAFFOLDS = ("c1ccccc1", "c1ccncc1", "C1CCCCC1", "c1ccoc1", "c1ccsc1", "c1cc[nH]c1",
              "c1ccc2ccccc2c1", "C1CCNCC1", "C1CCOC1", "c1cnc[nH]1", "C1CCCC1", "c1ccc(cc1)-c1ccccc1",
              "O=C1CCCCC1", "c1ccc2[nH]ccc2c1", "C1CC1")
_SUBSTITUENTS = ("*O", "*N", "*C(=O)O", "*Cl", "*Br", "*F", "*C", "*CC", "*OC", "*[N+](=O)[O-]",
                 "*C(C)=O", "*C#N", "*C(=O)OC", "*C(N)=O", "*S", "*CCO", "*CCCC", "*C(F)(F)F",
                 "*NC(C)=O", "*OCC(=O)O")
# functional groups (SMARTS, singular, plural) that the descriptions report
_GROUPS = (
    ("[CX3](=O)[OX2H1]", "carboxylic acid group", "carboxylic acid groups"),
    ("[CX3](=O)[OX2][#6]", "ester group", "ester groups"),
    ("[CX3](=O)[NX3]", "amide group", "amide groups"),
    ("[#6][CX3](=O)[#6]", "ketone group", "ketone groups"),
    ("[OX2H][CX4,c]", "hydroxy group", "hydroxy groups"),
    ("[NX3;H2,H1;!$(NC=O)][#6]", "amino group", "amino groups"),
    ("[N+](=O)[O-]", "nitro group", "nitro groups"),
    ("C#N", "nitrile group", "nitrile groups"),
    ("[OD2]([#6;!$(C=O)])[#6;!$(C=O)]", "ether linkage", "ether linkages"),
    ("[SX2H]", "thiol group", "thiol groups"),
    ("C(F)(F)F", "trifluoromethyl group", "trifluoromethyl groups"),
    ("[Cl]", "chloro substituent", "chloro substituents"),
    ("[Br]", "bromo substituent", "bromo substituents"),
    ("[F;!$(FC(F)F)]", "fluoro substituent", "fluoro substituents"),
)
_NUM = ("no", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")
_RING_NAMES = {5: "five-membered", 6: "six-membered", 3: "three-membered", 4: "four-membered",
               7: "seven-membered"}
_PATTERNS = None


def _attach(mol, atom_idx, frag_smiles):
    frag = Chem.MolFromSmiles(frag_smiles)
    dummy = next(a for a in frag.GetAtoms() if a.GetAtomicNum() == 0)
    anchor = dummy.GetNeighbors()[0].GetIdx()
    combo = Chem.RWMol(Chem.CombineMols(mol, frag))
    off = mol.GetNumAtoms()
    combo.AddBond(atom_idx, off + anchor, Chem.BondType.SINGLE)
    combo.RemoveAtom(off + dummy.GetIdx())
    out = combo.GetMol()
    Chem.SanitizeMol(out)
    return out


def describe(mol, rng=None):
    """A description of a molecule generated from what RDKit finds in it: ring systems, functional
    groups (SMARTS counts), size and molecular formula.  rng (a numpy Generator) varies the phrasing;
    None gives the canonical phrasing."""
    global _PATTERNS
    mol = _as_mol(mol)
    if _PATTERNS is None:
        _PATTERNS = [(Chem.MolFromSmarts(s), a, b) for s, a, b in _GROUPS]
    pick = (lambda opts: opts[0]) if rng is None else (lambda opts: opts[rng.integers(len(opts))])
    ri = mol.GetRingInfo()
    rings = []
    for r in ri.AtomRings():
        arom = all(mol.GetAtomWithIdx(i).GetIsAromatic() for i in r)
        het = sorted({mol.GetAtomWithIdx(i).GetSymbol() for i in r} - {"C"})
        rings.append((len(r), arom, tuple(het)))
    groups = []
    for patt, one, many in _PATTERNS:
        k = len(mol.GetSubstructMatches(patt))
        if k:
            groups.append(("an " if one[0] in "aeiou" else "a ") + one if k == 1
                          else f"{_NUM[min(k, 10)]} {many}")
    n_heavy = mol.GetNumAtoms()
    formula = rdMolDescriptors.CalcMolFormula(mol)
    if not rings:
        core = pick(("an acyclic compound", "an open-chain compound"))
    else:
        parts = {}
        for size, arom, het in rings:
            name = f"{'aromatic' if arom else 'non-aromatic'} " \
                   f"{_RING_NAMES.get(size, f'{size}-membered')} " \
                   f"{'heterocycle containing ' + ' and '.join(het) if het else 'carbocycle'}"
            parts[name] = parts.get(name, 0) + 1
        core = " and ".join(f"{_NUM[min(k, 10)]} {n}{'s' if k > 1 else ''}" for n, k in parts.items())
        core = pick(("a cyclic compound with ", "a ring compound containing ")) + core
    s1 = f"The molecule is {core}"
    if groups:
        s1 += pick((" carrying ", " substituted by ", " bearing ")) + ", ".join(groups[:-1]) + \
            (" and " if len(groups) > 1 else "") + groups[-1]
    s1 += "."
    fused = any(len(set(a) & set(b)) >= 2 for i, a in enumerate(ri.AtomRings())
                for b in ri.AtomRings()[i + 1:])
    s2 = f" It has {n_heavy} heavy atoms and the molecular formula {formula}."
    if fused:
        s2 += pick((" Its rings are fused.", " It is a fused polycyclic compound."))
    if n_heavy >= 15:
        s2 += pick((" It is a relatively large molecule.", " It is a medium-sized molecule."))
    elif n_heavy <= 6:
        s2 += " It is a small molecule."
    return s1 + s2


def generated_corpus(n=200, seed=0):
    """``n`` distinct text–molecule pairs the project generates itself: a ring scaffold with one to
    three substituents (molecules built and sanitised with RDKit), described by :func:`describe`
    from what RDKit finds in the final molecule.  Returns (smiles list, descriptions list); the same
    for the same (n, seed).  Raises ValueError when n distinct molecules cannot be made."""
    n = int(n)
    if n < 1:
        raise ValueError(f"n: expected a positive count, got {n}")
    rng = np.random.default_rng(seed)
    smiles, descs, seen = [], [], set()
    RDLogger.DisableLog("rdApp.*")
    try:
        for _ in range(50 * n):
            if len(smiles) == n:
                break
            mol = Chem.MolFromSmiles(_SCAFFOLDS[rng.integers(len(_SCAFFOLDS))])
            for _ in range(int(rng.integers(1, 4))):
                free = [a.GetIdx() for a in mol.GetAtoms()
                        if a.GetTotalNumHs() > 0 and a.GetAtomicNum() == 6]
                if not free:
                    break
                try:
                    mol = _attach(mol, int(free[rng.integers(len(free))]),
                                  _SUBSTITUENTS[rng.integers(len(_SUBSTITUENTS))])
                except Exception:  # noqa: BLE001 - a failed sanitisation just skips this attachment
                    continue
            smi = Chem.MolToSmiles(mol)
            if smi in seen:
                continue
            seen.add(smi)
            smiles.append(smi)
            descs.append(describe(Chem.MolFromSmiles(smi), rng))
    finally:
        RDLogger.EnableLog("rdApp.*")
    if len(smiles) < n:
        raise ValueError(f"n: could only generate {len(smiles)} distinct molecules, asked for {n}")
    return smiles, descs
