"""Drum accompaniment (seed 001): piano, guitar and bass in, drums out; entry:
apps/drum_accompaniment.py. Derivations: docs/derivations/drum_vae.md, drum_judge.md.

    data.py      Lakh (Beatles) songs and Groove MIDI performances -> windows of rolls and
                 H/V/O drums, split by song, cached; APP, the checkpoints' tag
    groove.py    drum notes <-> H/V/O matrices (Magenta's 9 classes), the drum-machine beat,
                 the beat template and its distance
    tasks.py     the accompaniment and humanisation tasks as batches; the `build-data` command
    encoder.py   the CNN-LSTM encoder of one input stream, its backward
    decoding.py  the decoder stepped on its own outputs: free running, scheduled sampling
    model.py     DrumVAE: encoders, VariationalBottleneck, conductor (one or two levels),
                 decoder, heads, its hand-written backward; generation; presets, transfer,
                 load_model
    loss.py      DrumLoss (hits, velocities, offsets, KL with free bits) and drum_metrics
    train.py     the layer-wise schedule, the teacher-forcing schedule, the Trainer (run
                 folder, exact resume); the `pretrain-groove` and `train` commands
    judge.py     the learned judge: a convolutional discriminator of real vs generated drums,
                 its hand-written backward, its training, the ROC AUC
    groove_metrics.py  what a drummer hears: hits per bar, fills, hi-hat velocity spread,
                 micro-timing per class, change between bars and sections
    baselines.py the drum machine, the nearest training beat, another song's drums
    evaluate.py  the one table (model teacher-forced and free-running, drum machine, nearest
                 beat, seed) with the judges' AUC and the groove metrics, the thresholds chosen
                 on validation, the judges' training, the humanisation errors; `evaluate`
    generate.py  drums for a whole song, candidates ranked (judge, template, likelihood),
                 written to MIDI with a piano-roll PNG and a WAV; `accompany`
"""
