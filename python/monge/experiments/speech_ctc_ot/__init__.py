"""Speech–text pre-training with CTC and optimal transport, then speech translation (issue 7; Le et
al., ICML 2023), at a CPU scale.

    python -m monge.experiments.speech_ctc_ot --data /path/to/free-spoken-digit-dataset
    python -m monge.experiments.speech_ctc_ot --corpus tts | --manifest train.tsv | --quick --corpus tts

- :mod:`.data`   speech corpora (FSDD digit sequences, eSpeak NG sentences, fairseq manifests), wav
                 I/O, log-mel features and the npz feature cache (NumPy and the standard library)
- :mod:`.model`  vocabularies, padded batches, the speech and text encoders and the decoder (PyTorch)
- :mod:`.train`  training and evaluation steps (MT, pre-training with CE / CTC / CTC + OT,
                 fine-tuning, modality gap, BLEU)
- :mod:`.run`    settings, every variant x seed, the table and the command line

The paper's OT loss itself is library code: :func:`monge.speech.ot_alignment_loss`.
"""
