"""Signal processing for the audio apps (WAV I/O, FFT, STFT, mel, MFCC, Griffin-Lim).

Not engine code: NumPy/SciPy only; librosa is the reference in tests, never a dependency here.
"""
