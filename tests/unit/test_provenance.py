"""Run provenance is assembled in one place (icpml.provenance)."""

from __future__ import annotations

from icpml import __version__
from icpml.config import demo_config
from icpml.provenance import config_hash, git_commit, library_versions, run_provenance

SHA = "0123456789abcdef0123456789abcdef01234567"


def test_git_commit_from_a_loose_ref(tmp_path):
    (tmp_path / ".git" / "refs" / "heads").mkdir(parents=True)
    (tmp_path / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    (tmp_path / ".git" / "refs" / "heads" / "main").write_text(SHA + "\n")
    assert git_commit(tmp_path) == SHA


def test_git_commit_from_packed_refs_and_detached_head(tmp_path):
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "HEAD").write_text("ref: refs/heads/dev\n")
    (tmp_path / ".git" / "packed-refs").write_text(f"# pack-refs\n{SHA} refs/heads/dev\n")
    assert git_commit(tmp_path) == SHA
    (tmp_path / ".git" / "HEAD").write_text(SHA[::-1] + "\n")
    assert git_commit(tmp_path) == SHA[::-1]


def test_no_git_checkout_no_commit(tmp_path):
    assert git_commit(tmp_path) is None and git_commit(None) is None


def test_run_provenance_names_config_data_code_and_libraries(tmp_path):
    cfg = demo_config(project_root=tmp_path)
    tags = run_provenance(cfg, "abc123")
    assert tags["icpml.data_fingerprint"] == "abc123"
    assert tags["icpml.config_hash"] == config_hash(cfg) and len(config_hash(cfg)) == 16
    assert tags["icpml.version.icpml"] == __version__ == library_versions()["icpml"]
    assert "icpml.version.scikit-learn" in tags and "icpml.git_commit" not in tags
    # the project root is not a setting: the same config elsewhere hashes the same
    assert config_hash(demo_config(project_root=tmp_path / "elsewhere")) == config_hash(cfg)
