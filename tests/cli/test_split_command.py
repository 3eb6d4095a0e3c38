"""`swarm split --draft-layers N`: one draft file, its size and N printed; bad N and --stages named as the flag."""

from __future__ import annotations

from pathlib import Path

import pytest

from swarm.cli.main import main
from swarm.gguf_files.synthetic_model import write_tiny_llama

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(scope="module")
def tiny4(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_llama(tmp_path_factory.mktemp("tiny4") / "tiny.gguf", seed=0, n_layer=4)


def test_draft_layers_writes_one_file_and_says_so(
    tiny4: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["split", str(tiny4), "--draft-layers", "2", "--out", str(tmp_path)]) == 0
    written = list(tmp_path.iterdir())
    assert [p.name for p in written] == ["tiny.draft2-of-4.gguf"]
    out = capsys.readouterr().out
    assert str(written[0]) in out
    assert "N = 2" in out
    assert f"{written[0].stat().st_size / 1e6:.1f} MB" in out


@pytest.mark.parametrize(
    ("layers", "message"),
    [
        ("0", "--draft-layers must be at least 1, not 0"),
        ("-1", "--draft-layers must be at least 1, not -1"),
        ("4", "--draft-layers: a draft of this 4-layer model keeps 1 to 3 layers, not 4"),
        ("9", "--draft-layers: a draft of this 4-layer model keeps 1 to 3 layers, not 9"),
    ],
)
def test_draft_layers_out_of_range_names_the_flag(
    tiny4: Path, tmp_path: Path, layers: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["split", str(tiny4), "--draft-layers", layers, "--out", str(tmp_path / "out")]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_draft_layers_and_stages_are_exclusive(tiny4: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["split", str(tiny4), "--draft-layers", "2", "--stages", "2", "--out", str(tmp_path)])
    assert exited.value.code == 2
    assert "--stages: not allowed with argument --draft-layers" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["split", str(tiny4), "--out", str(tmp_path)])
    assert "one of the arguments --stages --draft-layers is required" in capsys.readouterr().err
