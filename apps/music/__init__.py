"""Music I/O and encodings shared by the music apps (ABC text, MIDI via mido, EsAC via music21)."""
