"""What a clip may be (formats, demuxers, header and size limits) and the errors that say
why one is refused. Shared by sniffing, decoding and validation (``core.audio``)."""

SUPPORTED_BY_SOUNDFILE = {".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aiff", ".aif"}
# libsndfile's own formats that are accepted; its exotic ones (MAT5, PVF, XI, ...) are not.
SOUNDFILE_FORMATS = frozenset({"WAV", "WAVEX", "RF64", "W64", "FLAC", "OGG", "MP3", "AIFF", "CAF"})
# ffmpeg demuxers a clip may come in: single-stream audio files and A/V containers whose
# demuxers never open other files (mov's external references are off by default).
FFMPEG_DEMUXERS = (
    "wav", "w64", "flac", "ogg", "mp3", "mov", "aac", "matroska", "aiff", "caf", "wv",
)  # fmt: skip
SUPPORTED_TEXT = "wav, flac, ogg, mp3, m4a/mp4/aac, webm/mkv, aiff"
MIN_RATE, MAX_RATE = 1000, 192_000  # Hz a header may claim
MAX_CHANNELS = 64
MAX_PEAK = 64.0  # |sample| beyond 36 dB over full scale is garbage, not loud music
BLOCK_FRAMES = 1 << 16
SNIFF_BYTES = 4096
FFPROBE_TIMEOUT_S = 20
FFMPEG_TIMEOUT_S = 120
FFMPEG_MAX_OUTPUT_RATE = 96_000  # ffmpeg resamples anything above (bounds its output size)


class AudioError(ValueError):
    """Base class: the input cannot be analysed."""


class NotAudioError(AudioError):
    pass


class CorruptAudioError(AudioError):
    pass


class EmptyAudioError(AudioError):
    pass


class SilentAudioError(AudioError):
    pass


class TooShortError(AudioError):
    pass


class DecoderMissingError(AudioError):
    pass
