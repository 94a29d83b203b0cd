import numpy as np

from realtime.audio import Resampler, array_to_pcm, pcm_duration_ms, pcm_to_array, silence, split_into_chunks


def test_pcm_round_trip_and_helpers():
    samples = np.array([0, 1, -1, 32767, -32768], dtype=np.int16)
    assert np.array_equal(pcm_to_array(array_to_pcm(samples)), samples)
    assert pcm_duration_ms(32000, 16000) == 1000.0
    assert len(silence(40, 16000)) == 1280
    assert [len(c) for c in split_into_chunks(bytes(3000), 1280)] == [1280, 1280, 440]


def test_streaming_resampler_keeps_duration_and_tone():
    rate_in, rate_out = 22050, 24000
    t = np.arange(rate_in) / rate_in  # one second of 440 Hz
    pcm = array_to_pcm((0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32))
    resampler = Resampler(rate_in, rate_out)
    # Odd-sized chunks: the resampler must carry half samples over.
    out = b"".join(resampler.process(c) for c in split_into_chunks(pcm, 1001)) + resampler.process(b"", last=True)
    assert abs(len(out) // 2 - rate_out) <= 2
    spectrum = np.abs(np.fft.rfft(pcm_to_array(out).astype(np.float64)))
    assert abs(np.argmax(spectrum) * rate_out / (len(out) // 2) - 440) < 2


def test_resampler_passthrough_when_rates_match():
    assert Resampler(16000, 16000).process(b"\x01\x02\x03\x04") == b"\x01\x02\x03\x04"
