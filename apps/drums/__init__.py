"""Drum accompaniment (seed 001): piano, guitar and bass in, drums out; entry:
apps/drum_accompaniment.py. Derivation: docs/derivations/drum_vae.md.

    data.py      Lakh (Beatles) songs and Groove MIDI performances -> windows of rolls and
                 H/V/O drums, split by song, cached; APP, the checkpoints' tag
    groove.py    drum notes <-> H/V/O matrices (Magenta's 9 classes), the drum-machine beat,
                 the beat template and its distance
    tasks.py     the accompaniment and humanisation tasks as batches; the `build-data` command
    model.py     DrumVAE: CNN-LSTM encoders, VariationalBottleneck, conductor, decoder, heads,
                 its hand-written backward; generation; presets, transfer, load_model
    loss.py      DrumLoss (hits, velocities, offsets, KL with free bits) and drum_metrics
    train.py     the layer-wise schedule, the Trainer (run folder, exact resume);
                 the `pretrain-groove` and `train` commands
    evaluate.py  test metrics beside the baselines and the seed's table, thresholds, the
                 humanisation errors; the `evaluate` command
    generate.py  drums for a whole song, ranked candidates, written to MIDI; `accompany`
"""
