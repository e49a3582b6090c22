"""ORMA (issue 8): motifs, hierarchical graphs, the ChEBI-20 loader, losses and a training step."""
import json

import numpy as np
import pytest

import torch  # noqa: E402  (the test extra installs torch)
import monge  # noqa: E402
from monge.experiments.orma import chem, data  # noqa: E402
from monge.experiments.orma import run as E  # noqa: E402
from monge.experiments.orma.losses import (info_nce, multitoken_motif_similarity,  # noqa: E402
                                          orma_losses, retrieval_metrics, token_atom_similarity)
from monge.experiments.orma.model import collate_graphs  # noqa: E402
from monge.experiments.orma.text import (MINILM_DIM, TextStore, WordPiece,  # noqa: E402
                                        minilm_token_states)



@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    """Torch's thread pool and the C core's OpenMP threads oversubscribe a busy 2-core machine
    (steps 5-10x slower); the experiment runs torch on one thread too."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)

# ------------------------------------------------------------------ motifs


def test_motifs_of_known_molecules():
    # benzene and ethanol: one ring, one chain -> a single motif each
    assert chem.motifs("c1ccccc1") == [(0, 1, 2, 3, 4, 5)]
    assert chem.motifs("CCO") == [(0, 1, 2)]
    # paracetamol CC(=O)Nc1ccc(O)cc1: BRICS cuts the amide C(=O)-N (atoms 1-3) and N-aryl (3-4);
    # the ring-OH bond (7-8) is a ring/non-ring bond, always cut -> acetyl, NH, benzene ring, OH
    assert chem.motifs("CC(=O)Nc1ccc(O)cc1") == [(0, 1, 2), (3,), (4, 5, 6, 7, 9, 10), (8,)]
    # ethyl acetate CCOC(C)=O: BRICS cuts both C-O bonds of the ester oxygen (1-2, 2-3)
    assert chem.motifs("CCOC(C)=O") == [(0, 1), (2,), (3, 4, 5)]
    # ibuprofen: isobutyl chain, benzene ring, propanoic acid chain
    assert chem.motifs("CC(C)Cc1ccc(cc1)C(C)C(=O)O") == [(0, 1, 2, 3), (4, 5, 6, 7, 8, 9),
                                                         (10, 11, 12, 13, 14)]
    # naphthalene: a fused ring system is split into its two rings (sharing atoms 3 and 8)
    assert chem.motifs("c1ccc2ccccc2c1") == [(0, 1, 2, 3, 8, 9), (3, 4, 5, 6, 7, 8)]
    # norbornane: the two SSSR rings share three atoms (bridged) -> merged into one motif
    assert chem.motifs("C1CC2CCC1C2") == [(0, 1, 2, 3, 4, 5, 6)]
    # biphenyl: the ring-ring bond is cut, two rings
    assert chem.motifs("c1ccc(cc1)-c1ccccc1") == [(0, 1, 2, 3, 4, 5), (6, 7, 8, 9, 10, 11)]
    # a salt: disconnected single atoms are their own motifs
    assert chem.motifs("[Na+].[Cl-]") == [(0,), (1,)]


def test_motifs_cover_every_atom_and_overlap_only_in_rings():
    smiles, _ = data.generated_corpus(60, seed=3)
    from rdkit import Chem

    for s in smiles:
        mol = Chem.MolFromSmiles(s)
        mots = chem.motifs(mol)
        covered = sorted({a for m in mots for a in m})
        assert covered == list(range(mol.GetNumAtoms())), s
        for i, a in enumerate(mots):
            for b in mots[i + 1:]:
                shared = set(a) & set(b)
                assert len(shared) <= 2, s
                assert all(mol.GetAtomWithIdx(k).IsInRing() for k in shared), s


def test_motifs_bad_input():
    with pytest.raises(ValueError, match="mol: invalid SMILES"):
        chem.motifs("C1CC")
    with pytest.raises(TypeError, match="mol"):
        chem.motifs(42)


# ------------------------------------------------------------------ graph


def test_hierarchical_graph_of_paracetamol():
    g = chem.mol_graph("CC(=O)Nc1ccc(O)cc1")
    assert g.atom_x.shape == (11, len(chem.ATOM_FEATURES)) and g.atom_x.dtype == np.int64
    assert g.bond_index.shape == (2, 22)                    # 11 bonds, both directions
    assert (g.bond_type == 3).sum() == 12                   # six aromatic bonds
    assert (g.bond_type == 1).sum() == 2                    # one C=O
    for f, (name, k) in enumerate(chem.ATOM_FEATURES):
        assert g.atom_x[:, f].min() >= 0 and g.atom_x[:, f].max() < k, name
    assert g.n_motifs == 4
    assert g.motif_x.tolist() == [[2, 3, 1], [2, 1, 1], [0, 6, 0], [2, 1, 1]]
    assert g.atom_motif.T.tolist() == [[0, 0], [1, 0], [2, 0], [3, 1], [4, 2], [5, 2], [6, 2],
                                       [7, 2], [9, 2], [10, 2], [8, 3]]
    assert g.motif_mol.tolist() == [[0, 1, 2, 3], [0, 0, 0, 0]]
    index, etype = g.hetero_edges()
    assert index.shape == (2, 22 + 2 * 11 + 2 * 4) and etype.shape == (52,)
    assert index.min() == 0 and index.max() == 11 + 4        # molecule node is n + m = 15
    am = index[:, etype == 4]                                 # atom<->motif
    assert set(map(tuple, am.T)) == {(a, 11 + k) for a, k in g.atom_motif.T} | \
        {(11 + k, a) for a, k in g.atom_motif.T}
    mm = index[:, etype == 5]
    assert set(map(tuple, mm.T)) == {(11 + k, 15) for k in range(4)} | {(15, 11 + k) for k in range(4)}


def test_naphthalene_shared_atoms_belong_to_both_rings():
    g = chem.mol_graph("c1ccc2ccccc2c1")
    memberships = np.bincount(g.atom_motif[0], minlength=10)
    assert memberships.tolist() == [1, 1, 1, 2, 1, 1, 1, 1, 2, 1]
    assert g.motif_x[:, 0].tolist() == [0, 0]                 # two aromatic rings


def test_collate_graphs_offsets():
    gs = [chem.mol_graph(s) for s in ("CCO", "c1ccccc1", "CC(=O)Nc1ccc(O)cc1")]
    b = collate_graphs(gs)
    N, M = 3 + 6 + 11, 1 + 1 + 4
    assert b.atom_x.shape == (N, 7) and b.motif_x.shape == (M, 3)
    assert b.edge_index.max() == N + M + 2
    assert b.atom_batch.tolist() == [0] * 3 + [1] * 6 + [2] * 11
    assert b.motif_pos.tolist() == [0, 0, 0, 1, 2, 3]
    # the edges of graph 1 (benzene): ring bonds among atoms 3..8, its motif is node N + 1
    e = b.edge_index.numpy()
    ring = e[:, (e[0] >= 3) & (e[0] < 9) & (e[1] < N)]
    assert ring.shape[1] == 12 and ring.min() == 3 and ring.max() == 8
    assert ((e[0] == 3) & (e[1] == N + 1)).sum() == 1 and ((e[0] == N + 1) & (e[1] == N + M + 1)).sum() == 1


# ------------------------------------------------------------------ loader and corpus


def test_generated_corpus_is_deterministic_and_describes_what_rdkit_finds():
    a = data.generated_corpus(40, seed=1)
    assert a == data.generated_corpus(40, seed=1)
    assert a != data.generated_corpus(40, seed=2)
    assert len(set(a[0])) == 40
    d = data.describe("Oc1ccc(Cl)cc1")
    assert "one aromatic six-membered carbocycle" in d
    assert "a hydroxy group" in d and "a chloro substituent" in d
    assert "8 heavy atoms" in d and "C6H5ClO" in d       # 6 C, O, Cl
    d = data.describe("OC(=O)CCC(=O)O")
    assert "acyclic" in d and "two carboxylic acid groups" in d and "C4H6O4" in d


def test_loader_round_trip(tmp_path):
    smiles, descs = data.generated_corpus(25, seed=0)
    f = tmp_path / "split.txt"
    data.write_chebi20(f, list(range(100, 125)), smiles, descs)
    d = data.load_chebi20(f)
    assert d.cids == list(range(100, 125)) and d.smiles == smiles and d.descriptions == descs
    assert len(d) == 25 and d.skipped == []


@pytest.mark.parametrize("row, message", [
    ("7\tCCO", "expected 3 tab-separated fields"),
    ("7\tCCO\tethanol\textra", "got 4"),
    ("x7\tCCO\tethanol", "CID must be a positive integer"),
    ("7\t\tethanol", "empty SMILES"),
    ("7\tCCO\t ", "empty description"),
    ("5\tCCO\tethanol", "CID 5 repeats line 2"),
    ("7\tC1CC(\tbroken", "RDKit cannot parse"),
])
def test_loader_rejects_malformed_rows_naming_file_and_line(tmp_path, row, message):
    f = tmp_path / "bad.txt"
    f.write_text("CID\tSMILES\tdescription\n5\tC\tmethane\n6\tCC\tethane\n" + row + "\n")
    with pytest.raises(ValueError, match=f"bad.txt:4: .*{message}"):
        data.load_chebi20(f)


def test_loader_header_skip_and_arguments(tmp_path):
    f = tmp_path / "h.txt"
    f.write_text("cid,smiles,description\n1\tC\tmethane\n")
    with pytest.raises(ValueError, match="h.txt:1: expected the header"):
        data.load_chebi20(f)
    f.write_text("CID\tSMILES\tdescription\r\n1\tC\tmethane\r\n\r\n2\tC1CC(\tbroken\r\n3\tCC\tethane\r\n")
    d = data.load_chebi20(f, invalid="skip")
    assert d.cids == [1, 3] and d.skipped == [(4, 2, "C1CC(")]
    with pytest.raises(ValueError, match="invalid"):
        data.load_chebi20(f, invalid="ignore")
    with pytest.raises(ValueError, match="path: no such file"):
        data.load_chebi20(tmp_path / "missing.txt")
    with pytest.raises(TypeError, match="path"):
        data.load_chebi20(3)


# ------------------------------------------------------------------ losses


def _padded(rng, lens, d):
    B, L = len(lens), max(lens)
    x = torch.tensor(rng.normal(size=(B, L, d)), dtype=torch.float64)
    mask = torch.zeros(B, L, dtype=torch.bool)
    for i, n in enumerate(lens):
        mask[i, :n] = True
        x[i, n:] = 0.0
    return x, mask


def test_token_atom_similarity_matches_a_loop(rng):
    tok, tm = _padded(rng, [4, 2, 3], 5)
    at, am = _padded(rng, [3, 5, 1], 5)
    S = token_atom_similarity(tok, tm, at, am)
    assert S.shape == (3, 3)
    for i in range(3):
        for j in range(3):
            t = tok[i, tm[i]].numpy()
            a = at[j, am[j]].numpy()
            c = (t / np.linalg.norm(t, axis=1, keepdims=True)) @ \
                (a / np.linalg.norm(a, axis=1, keepdims=True)).T
            assert S[i, j].item() == pytest.approx(0.5 * (c.max(1).mean() + c.max(0).mean()), abs=1e-12)


@pytest.mark.parametrize("method", ["ipot", "sinkhorn"])
def test_multitoken_motif_similarity_matches_manual_gathering(rng, method):
    tok, tm = _padded(rng, [7, 5], 4)
    mo, mm = _padded(rng, [3, 2], 4)
    tok.requires_grad_(True)
    mo.requires_grad_(True)
    S, plans = multitoken_motif_similarity(tok, tm, mo, mm, method=method)
    assert S.shape == (2, 2) and plans.shape == (2, 2, 7, 3)
    kw = dict(outer=50, beta=0.5) if method == "ipot" else dict(eps=0.05, tol=1e-4, max_iter=2000)
    for i in range(2):
        for j in range(2):
            t, m = tok[i, tm[i]].detach().numpy(), mo[j, mm[j]].detach().numpy()
            P = monge.align(t, m, method=method, **kw).plan
            np.testing.assert_allclose(plans[i, j, :len(t), :len(m)].numpy(), P, atol=1e-6)
            assert plans[i, j, len(t):].abs().sum() == 0 and plans[i, j, :, len(m):].abs().sum() == 0
            owner = P.argmax(1)
            cos = []
            for k in range(len(m)):
                members = np.flatnonzero(owner == k)
                if members.size == 0:
                    members = [P[:, k].argmax()]
                g = t[members].mean(0)
                cos.append(g @ m[k] / np.linalg.norm(g) / np.linalg.norm(m[k]))
            assert S[i, j].item() == pytest.approx(np.mean(cos), abs=1e-9)
    S.trace().backward()
    assert tok.grad.shape == tok.shape and mo.grad.shape == mo.shape
    assert tok.grad[tm].abs().sum() > 0 and mo.grad[mm].abs().sum() > 0
    assert tok.grad[~tm].abs().max() == 0 and mo.grad[~mm].abs().max() == 0


def test_multitoken_motif_padding_does_not_change_similarity(rng):
    tok, tm = _padded(rng, [6, 4], 3)
    mo, mm = _padded(rng, [2, 3], 3)
    S, _ = multitoken_motif_similarity(tok, tm, mo, mm)
    pad = lambda x, m, k: (torch.cat([x, torch.zeros(x.shape[0], k, x.shape[2], dtype=x.dtype)], 1),  # noqa: E731
                           torch.cat([m, torch.zeros(m.shape[0], k, dtype=torch.bool)], 1))
    S2, _ = multitoken_motif_similarity(*pad(tok, tm, 3), *pad(mo, mm, 2))
    torch.testing.assert_close(S, S2)


def test_info_nce_and_bad_input():
    B = 5
    assert info_nce(torch.zeros(B, B), 10.0).item() == pytest.approx(np.log(B))
    assert info_nce(torch.eye(B), 20.0).item() < 1e-6
    with pytest.raises(ValueError, match="S"):
        info_nce(torch.zeros(2, 3), 1.0)
    x, m = torch.zeros(2, 3, 4), torch.ones(2, 3, dtype=torch.bool)
    m[1] = False
    with pytest.raises(ValueError, match="tok"):
        token_atom_similarity(x + 1, m, x + 1, torch.ones(2, 3, dtype=torch.bool))
    with pytest.raises(ValueError, match="pairs"):
        multitoken_motif_similarity(x + 1, ~m | True, x + 1, ~m | True, pairs="some")


def test_retrieval_metrics_by_hand():
    S = np.array([[0.9, 0.1, 0.0],     # text 0: match ranked 1
                  [0.8, 0.5, 0.9],     # text 1: two molecules score higher -> rank 3
                  [0.1, 0.2, 0.3]])    # text 2: rank 1
    r = retrieval_metrics(S, ks=(1, 2))
    assert r["text_to_mol"]["ranks"].tolist() == [1, 3, 1]
    assert r["text_to_mol"]["hits@1"] == pytest.approx(2 / 3)
    assert r["text_to_mol"]["mrr"] == pytest.approx((1 + 1 / 3 + 1) / 3)
    # columns: molecule 0 -> text 0 (0.9) beats 0.8 -> rank 1; molecule 1: 0.5 vs 0.1, 0.2 -> 1;
    # molecule 2: 0.3 vs 0.0, 0.9 -> 2
    assert r["mol_to_text"]["ranks"].tolist() == [1, 1, 2]
    assert r["mol_to_text"]["mean_rank"] == pytest.approx(4 / 3)
    with pytest.raises(ValueError, match="S"):
        retrieval_metrics(np.zeros((2, 3)))


def test_retrieval_metrics_count_ties_against_the_model():
    # a model that scores every pair the same separates nothing: every match is ranked last
    r = retrieval_metrics(np.zeros((5, 5)), ks=(1, 4, 5))
    for d in ("text_to_mol", "mol_to_text"):
        assert r[d]["ranks"].tolist() == [5] * 5
        assert r[d]["hits@1"] == 0 and r[d]["hits@4"] == 0 and r[d]["hits@5"] == 1
        assert r[d]["mean_rank"] == 5 and r[d]["mrr"] == pytest.approx(0.2)
    # one tie with the match: rank 2 in that row and that column, the others unaffected
    S = np.eye(3)
    S[0, 2] = 1.0
    r = retrieval_metrics(S)
    assert r["text_to_mol"]["ranks"].tolist() == [2, 1, 1]
    assert r["mol_to_text"]["ranks"].tolist() == [1, 1, 2]


# ------------------------------------------------------------------ model and training


@pytest.fixture(scope="module")
def small_prep():
    smiles, descs = data.generated_corpus(48, seed=5)
    wp = WordPiece()
    ids = wp.encode(descs, 48)
    states = TextStore.from_list([np.zeros((len(i), MINILM_DIM), np.float16) for i in ids])
    return E.Prepared(smiles, descs, [chem.mol_graph(s) for s in smiles],
                      TextStore.from_list(ids), states, np.arange(32), np.arange(32, 48),
                      "test", wp.vocab_size, 48, 0, fingerprints=chem.morgan_counts(smiles))


def test_model_output_shapes(small_prep):
    cfg = E.RunConfig(text="scratch", dim=16, hidden=32, gnn_layers=2)
    model = E.build_model(cfg, small_prep)
    idx = np.arange(6)
    x, mask = small_prep.ids.batch(idx)
    g = collate_graphs([small_prep.graphs[i] for i in idx])
    out = model(x, mask, g)
    A = max(small_prep.graphs[i].n_atoms for i in idx)
    Mo = max(small_prep.graphs[i].n_motifs for i in idx)
    assert out["tok"].shape == (6, x.shape[1], 16) and out["sent"].shape == (6, 16)
    assert out["atoms"].shape == (6, A, 16) and out["motifs"].shape == (6, Mo, 16)
    assert out["mol"].shape == (6, 16)
    assert out["amask"].sum(1).tolist() == [small_prep.graphs[i].n_atoms for i in idx]
    assert out["mmask"].sum(1).tolist() == [small_prep.graphs[i].n_motifs for i in idx]


@pytest.mark.parametrize("method", ["ipot", "sinkhorn"])
def test_training_decreases_the_full_loss(small_prep, method):
    cfg = E.RunConfig(text="scratch", w_token_atom=1.0, w_motif=1.0, method=method, dim=32,
                      hidden=64, gnn_layers=2, epochs=1, batch_size=16, lr=3e-3, seed=0)
    model = E.build_model(cfg, small_prep)
    idx = np.arange(16)
    x, mask = small_prep.ids.batch(idx)
    g = collate_graphs([small_prep.graphs[i] for i in idx])
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    model.eval()  # no dropout: the same batch gives the same loss
    first = None
    for _ in range(25):
        losses = orma_losses(model(x, mask, g), model.scale(), w_token_atom=1.0, w_motif=1.0,
                                  method=method)
        first = first or {k: v.item() for k, v in losses.items()}
        opt.zero_grad()
        losses["total"].backward()
        assert all(p.grad is not None for n, p in model.named_parameters() if "proj" in n)
        opt.step()
    last = {k: v.item() for k, v in losses.items()}
    assert set(last) == {"global", "token_atom", "motif", "total"}
    assert last["total"] < 0.7 * first["total"]
    assert last["motif"] < first["motif"] and last["token_atom"] < first["token_atom"]


# (anchor, paraphrase, unrelated sentence): the second pair shares almost no words
MINILM_TRIPLES = [
    ("The molecule is a carboxylic acid.", "This compound is a carboxylic acid.",
     "The train to Paris leaves at noon."),
    ("An aromatic ring with a hydroxy group.", "A benzene ring bearing an OH group.",
     "She sang a song at the wedding."),
    ("The molecule is a sugar found in fruit.", "This compound is a sugar present in fruits.",
     "The football match ended in a draw."),
]


def test_minilm_loads_offline_with_its_pretrained_weights():
    """The frozen encoder is the pretrained one: mean-pooled states put a paraphrase far closer to
    its sentence than an unrelated sentence.  Pretrained weights give cosine margins of 0.6-0.86
    here; the same architecture with random weights gives 0.01-0.04 (every pair above 0.94), so a
    loader that silently fell back to an untrained model fails."""
    wp = WordPiece()
    ids = wp.encode([t for triple in MINILM_TRIPLES for t in triple], 32)
    assert ids[0][0] == 101 and ids[0][-1] == 102            # [CLS] ... [SEP]
    store = minilm_token_states(ids)
    x, mask = store.batch(list(range(len(ids))))
    assert x.shape[2] == 384 and mask.sum(1).tolist() == [len(i) for i in ids]
    e = torch.nn.functional.normalize((x * mask[..., None]).sum(1) / mask.sum(1, keepdim=True), dim=1)
    for k, triple in enumerate(MINILM_TRIPLES):
        a, para, other = e[3 * k], e[3 * k + 1], e[3 * k + 2]
        close, far = (a @ para).item(), (a @ other).item()
        assert close - far > 0.4 and far < 0.3, (triple, close, far)


def test_morgan_counts():
    # at radius 0 every heavy atom contributes one environment: the counts sum to the atom count
    for smi, n in (("CCO", 3), ("c1ccccc1", 6), ("CC(=O)Nc1ccc(O)cc1", 11)):
        fp0 = chem.morgan_counts([smi], radius=0, n_bits=4096)
        assert fp0.shape == (1, 4096) and fp0.dtype == np.uint16 and fp0.sum() == n
    # benzene: six equivalent atoms -> one bit counting 6 at radius 0
    assert sorted(chem.morgan_counts(["c1ccccc1"], radius=0).ravel()[np.flatnonzero(
        chem.morgan_counts(["c1ccccc1"], radius=0))]) == [6]
    fp = chem.morgan_counts(["CCO", "OCC", "CCN"])
    assert np.array_equal(fp[0], fp[1]) and not np.array_equal(fp[0], fp[2])
    with pytest.raises(ValueError, match="mols\\[1\\]"):
        chem.morgan_counts(["CCO", "C1CC"])
    with pytest.raises(ValueError, match="radius"):
        chem.morgan_counts(["CCO"], radius=-1)


def test_fingerprint_mlp_baseline_trains_and_refuses_fine_scales(small_prep):
    # the fixture's MiniLM states are zeros: train the scratch text encoder against it
    cfg = E.RunConfig(text="scratch", mol="morgan", dim=16, hidden=32, epochs=1, batch_size=16)
    model = E.build_model(cfg, small_prep)
    idx = np.arange(16)
    x, mask = small_prep.ids.batch(idx)
    fp = E._mol_batch(small_prep, cfg, idx)
    assert fp.shape == (16, 2048)
    out = model(x, mask, fp)
    assert out["mol"].shape == (16, 16) and out["atoms"] is None and out["motifs"] is None
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    model.eval()
    first = None
    for _ in range(20):
        loss = orma_losses(model(x, mask, fp), model.scale())["total"]
        first = first or loss.item()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.5 * first
    with pytest.raises(ValueError, match="mol: the fingerprint MLP"):
        E.build_model(E.RunConfig(mol="morgan", w_motif=1.0), small_prep)
    with pytest.raises(ValueError, match="mol: expected"):
        E.build_model(E.RunConfig(mol="ecfp"), small_prep)


def _chebi_folder(tmp_path, n_val=30, n_test=20, n_train=0):
    smiles, descs = data.generated_corpus(n_val + n_test + n_train, seed=3)
    cids = list(range(1, len(smiles) + 1))
    d = tmp_path / "chebi20"
    d.mkdir()
    parts = {"validation.txt": slice(0, n_val), "test.txt": slice(n_val, n_val + n_test)}
    if n_train:
        parts["train.txt"] = slice(n_val + n_test, None)
    for name, sl in parts.items():
        data.write_chebi20(d / name, cids[sl], smiles[sl], descs[sl])
    (d / "notes.txt").write_text("not a split")
    return d, smiles


def test_prepare_standard_protocol(tmp_path):
    d, smiles = _chebi_folder(tmp_path, n_train=15)
    prep = E.prepare(d, n_dev=8, split_seed=1, max_len=32, cache_dir=None, log=lambda *a: None)
    by_smiles = {s: k for k, s in enumerate(prep.smiles)}
    test = {prep.smiles[i] for i in prep.test}
    dev = {prep.smiles[i] for i in prep.dev}
    train = {prep.smiles[i] for i in prep.train}
    assert test == set(smiles[30:50])                      # every test.txt pair, nothing else
    assert len(dev) == 8 and dev <= set(smiles[:30])        # dev: drawn from validation.txt
    assert train == (set(smiles[:30]) - dev) | set(smiles[50:])
    assert len(by_smiles) == len(prep.smiles) == 65         # notes.txt was not read
    assert set(prep.data_files) == {"test.txt", "train.txt", "validation.txt"}
    assert prep.data_files["test.txt"] == __import__("hashlib").sha256(
        (d / "test.txt").read_bytes()).hexdigest()
    assert prep.fingerprints.shape == (65, 2048) and "test.txt 20 pairs" in prep.source
    # another split seed draws another dev part from the same file
    other = E.prepare(d, n_dev=8, split_seed=2, max_len=32, cache_dir=None, log=lambda *a: None)
    assert {other.smiles[i] for i in other.dev} != dev
    (d / "test.txt").unlink()
    with pytest.raises(ValueError, match="data: .* has no test.txt"):
        E.prepare(d, cache_dir=None, log=lambda *a: None)
    (tmp_path / "b").mkdir()
    with pytest.raises(ValueError, match="n_dev"):
        E.prepare(_chebi_folder(tmp_path / "b")[0], n_dev=30, cache_dir=None, log=lambda *a: None)


def test_training_keeps_the_epoch_with_the_best_dev_mrr(small_prep, monkeypatch):
    prep = E.Prepared(**{**small_prep.__dict__, "train": np.arange(24), "dev": np.arange(24, 36),
                         "test": np.arange(36, 48)})
    cfg = E.RunConfig(text="scratch", mol="morgan", dim=16, hidden=32, epochs=6, patience=6,
                      batch_size=8, lr=5e-3)
    # a scripted dev curve peaking at epoch 2; record the weights at each evaluation
    script, snapshots = iter([0.1, 0.5, 0.2, 0.3, 0.4, 0.45]), []

    def scripted(model, cfg, prep):
        snapshots.append({k: v.clone() for k, v in model.state_dict().items()})
        return next(script)

    monkeypatch.setattr(E, "_dev_score", scripted)
    model, hist, info = E.train(cfg, prep)
    assert info["epochs_run"] == 6 and info["best_epoch"] == 2
    assert len(hist) == 6 * info["steps_per_epoch"] == 6 * 3
    state = model.state_dict()
    assert all(torch.equal(state[k], snapshots[1][k]) for k in state)       # epoch 2's weights
    assert not all(torch.equal(state[k], snapshots[-1][k]) for k in state)
    # patience 2 stops two epochs after the last improvement
    script = iter([0.1, 0.5, 0.2, 0.3, 0.9, 0.95])
    _, _, early = E.train(E.RunConfig(**{**cfg.__dict__, "patience": 2}), prep)
    assert early["epochs_run"] == 4 and early["best_epoch"] == 2
    with pytest.raises(ValueError, match="batch_size"):
        E.train(E.RunConfig(**{**cfg.__dict__, "batch_size": 64}), prep)


def test_paired_table_and_render(tmp_path):
    def row(config, seed, mrr_t, mrr_m):
        met = {"hits@1": 0.1, "hits@10": 0.5, "mean_rank": 20.0}
        return {"config": config, "seed": seed, "best_epoch": 3,
                "text_to_mol": dict(met, mrr=mrr_t), "mol_to_text": dict(met, mrr=mrr_m)}
    rows = [row("global", s, 0.10 + 0.01 * s, 0.10) for s in range(3)]
    rows += [row("full (IPOT)", s, 0.15 + 0.01 * s + 0.001 * (s == 1), 0.10 + 0.002 * (s - 1))
             for s in range(3)]
    text = E.paired_table(rows)
    d = np.array([5.0, 5.1, 5.0])       # text->mol MRR differences in points
    half = 4.303 * d.std(ddof=1) / np.sqrt(3)
    assert f"+{d.mean():.2f} ± {half:.2f}" in text
    assert "above / not separated" in text
    s = E.summarize(rows)
    assert s["global"]["text_to_mol"]["mrr"] == pytest.approx((0.11, 0.01))
    meta = {"date": "2026-12-05", "command": "python -m monge.experiments.orma", "note": "",
            "machine": {"commit": "abc", "cpu": "cpu", "cores": 2, "load_average": [0.0]},
            "load_average_after": [0.0], "data": {"source": "fixture"}}
    info = {"n_train": 10, "n_dev": 5, "n_test": 7, "dropped_large": 0, "max_atoms": 150,
            "base": {"epochs": 4, "batch_size": 8}}
    path = tmp_path / "r.json"
    path.write_text(json.dumps({"meta": meta, "rows": rows, "info": info}))
    out = E.render(str(path))
    assert "Data: fixture; 10 training pairs" in out and "| global |" in out
    assert "Text2Mol MLP1, published" in out and "37.2" in out and text in out
    # a run split over two processes by seed renders as one
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    a.write_text(json.dumps({"meta": meta, "rows": rows[:2] + rows[3:5], "info": info}))
    b.write_text(json.dumps({"meta": meta, "rows": [rows[2], rows[5]], "info": info}))
    assert E.paired_table(rows) in E.render(str(a), str(b))
    with pytest.raises(ValueError, match="repeat"):
        E.render(str(a), str(a))
    c = tmp_path / "c.json"
    c.write_text(json.dumps({"meta": meta, "rows": [rows[2]], "info": dict(info, n_test=8)}))
    with pytest.raises(ValueError, match="n_test"):
        E.render(str(a), str(c))


def test_experiment_cli_quick(tmp_path):
    out = tmp_path / "r.json"
    n = torch.get_num_threads()
    rc = E.main(["--quick", "--seeds", "2", "--epochs", "2", "--configs",
                 "fingerprint MLP (global),global,full (Sinkhorn)", "--n-pairs", "60", "--n-test",
                 "20", "--n-dev", "10", "--cache-dir", str(tmp_path / "cache"), "--out", str(out),
                 "--plots", str(tmp_path / "figs")])
    torch.set_num_threads(n)
    assert rc == 0
    r = json.loads(out.read_text())
    assert r["meta"]["command"].startswith("python -m monge.experiments.orma --quick")
    assert "generated corpus" in r["meta"]["data"]["source"]
    assert r["info"]["n_test"] == 20 and r["info"]["n_dev"] == 10 and r["info"]["n_train"] == 30
    assert {x["config"] for x in r["rows"]} == {"fingerprint MLP (global)", "global",
                                                "full (Sinkhorn)"}
    assert len(r["rows"]) == 6
    for x in r["rows"]:
        assert 1 <= x["best_epoch"] <= x["epochs_run"] <= 2 and len(x["dev_mrr"]) == x["epochs_run"]
        t = x["text_to_mol"]
        assert 0 <= t["hits@1"] <= t["hits@10"] <= 1 and 1 <= t["mean_rank"] <= 20
        assert len(x["mol_to_text"]["curve"]) == 100
    assert (tmp_path / "figs" / "orma_plan.png").stat().st_size > 0
    assert list((tmp_path / "cache").glob("minilm_*.npz"))        # the cache was written
    assert "| global |" in E.render(str(out))
    with pytest.raises(SystemExit):
        E.main(["--quick", "--configs", "global,bogus"])
