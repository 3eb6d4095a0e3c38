"""TextStream: UTF-8 split across tokens, stop strings across tokens, flush."""

from swarm.engine.text_stream import TextStream


def feed_all(stream: TextStream, pieces: list[bytes]) -> tuple[str, bool]:
    out = ""
    for i, piece in enumerate(pieces):
        release = stream.feed(i, piece)
        out += release.text
        if release.stopped:
            return out, True
    return out + stream.flush().text, False


def test_multibyte_character_split_across_tokens_is_held_until_complete() -> None:
    stream = TextStream()
    euro = "€".encode()
    first = stream.feed(1, b"a" + euro[:1])
    assert first.text == "a"
    assert stream.feed(2, euro[1:2]).text == ""
    last = stream.feed(3, euro[2:])
    assert last.text == "€"
    assert last.token_ids == (2, 3)


def test_stop_string_spanning_tokens_is_cut_and_never_sent() -> None:
    text, stopped = feed_all(TextStream(stop=["\n\n"]), [b"Hello", b" world\n", b"\nmore"])
    assert (text, stopped) == ("Hello world", True)


def test_partial_stop_prefix_is_released_when_it_turns_out_not_to_match() -> None:
    stream = TextStream(stop=["END"])
    assert stream.feed(0, b"the E").text == "the "
    assert stream.feed(1, b"N").text == ""
    assert stream.feed(2, b"ough").text == "ENough"


def test_earliest_stop_string_wins() -> None:
    text, stopped = feed_all(TextStream(stop=["c", "ab"]), [b"xxabc"])
    assert (text, stopped) == ("xx", True)


def test_flush_releases_held_prefix_at_the_end() -> None:
    text, stopped = feed_all(TextStream(stop=["STOP"]), [b"go ST"])
    assert (text, stopped) == ("go ST", False)


def test_tokens_travel_with_the_text_they_produced() -> None:
    stream = TextStream(stop=["xyz"])
    assert stream.feed(7, b"ab").token_ids == (7,)
    assert stream.feed(8, b"x").token_ids == ()
    assert stream.feed(9, b"q").token_ids == (8, 9)
