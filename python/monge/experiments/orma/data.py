"""Text–molecule pairs for the ORMA experiment: the ChEBI-20 loader (MolT5's tab-separated CID,
SMILES, description files), its writer, and a small generated corpus whose descriptions are written
from what RDKit finds in each molecule (for tests, the notebook and ``--quick``).

Needs RDKit: ``pip install 'monge[orma]'``.  Malformed files raise :class:`monge._io.DataFormatError`
naming file and line.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np

from ... import _io
from ..._io import DataFormatError
from .chem import MAX_SMILES_LENGTH, _as_mol

try:
    from rdkit import Chem, RDLogger
    from rdkit.Chem import rdMolDescriptors
except ImportError as exc:  # pragma: no cover - the module needs the orma extra
    raise ImportError("monge.experiments.orma.data needs RDKit: pip install 'monge[orma]'") from exc

__all__ = ["ChEBI20", "load_chebi20", "write_chebi20", "generated_corpus", "describe"]

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
