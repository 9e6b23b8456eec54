"""Hub round trip through a real Hub-protocol server on loopback (olah, see `tests/hub_server.py`).

The push side is captured at the huggingface_hub commit boundary: `HfApi.create_repo`, `create_branch` and
`create_commit` are replaced by functions that apply the commit's add/delete operations to the server's git
repositories (the upload transport itself is not exercised); every read (`list_repo_files`, the README check,
downloads) goes through the server. The pull side runs in fresh processes (HF_ENDPOINT must be set before
huggingface_hub is imported), by repo id, with the real client.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import textwrap
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import huggingface_hub
import pytest
import torch
from conftest import CLASS_NAMES, make_images
from huggingface_hub import CommitInfo, CommitOperationAdd, CommitOperationDelete, HfApi, ModelCard
from huggingface_hub.hf_api import RepoUrl
from safetensors.torch import load_file

from hf_tip import TipAdapterForImageClassification
from hf_tip.cli import main as cli_main
from hf_tip.hub.push import missing_files

pytestmark = pytest.mark.hub

ROOT = Path(__file__).resolve().parents[1]
OLAH_PYTHON = Path(os.environ.get("HF_TIP_OLAH_PYTHON", ROOT / ".venv-olah" / "bin" / "python"))
CARD_DATA = {
    "dataset_name": None,
    "eval_split": "test",
    "num_shots": 2,
    "results": {"zero_shot_accuracy": 0.25, "tip_adapter_accuracy": 0.75},
    "command": "hf-tip build --train_dir train --test_dir test --num_shots 2",
}
GIT = ["git", "-c", "user.name=hub-test", "-c", "user.email=hub-test@localhost", "-c", "commit.gpgsign=false"]


@dataclass
class LocalHub:
    url: str
    mirrors: Path
    log: Path

    def repo_dir(self, repo_id: str) -> Path:
        return self.mirrors / "models" / repo_id

    def git(self, repo_id: str, *args: str) -> str:
        done = subprocess.run([*GIT, *args], cwd=self.repo_dir(repo_id), capture_output=True, text=True, check=True)
        return done.stdout.strip()

    def shim_lines(self) -> list[str]:
        return [line for line in self.log.read_text().splitlines() if line.startswith("hub-shim:")]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def unavailable(reason: str):
    """Skip when the local Hub cannot run here; under CI (`CI=true`), where scripts/setup.sh installs it, fail."""
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"the local Hub is required under CI: {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    """olah on a free loopback port, serving the git repositories under `mirrors/models/<org>/<name>`."""
    if not OLAH_PYTHON.is_file():
        unavailable(f"olah is not installed ({OLAH_PYTHON} is missing): run scripts/setup.sh")
    if shutil.which("git") is None:
        unavailable("git is not installed; the local Hub serves git repositories")
    root = tmp_path_factory.mktemp("hub")
    mirrors = root / "mirrors"
    (mirrors / "models").mkdir(parents=True)
    port = _free_port()
    config = root / "olah.toml"
    config.write_text(
        textwrap.dedent(f"""\
        [basic]
        host = "127.0.0.1"
        port = {port}
        repos-path = "{root / "cache"}"
        mirrors-path = ["{mirrors}"]
        metadata-cache-ttl = 0
        [accessibility]
        offline = true
        """)
    )
    log = root / "server.log"
    with open(log, "w") as out:
        server = subprocess.Popen(
            [str(OLAH_PYTHON), str(ROOT / "tests" / "hub_server.py"), "-c", str(config), "--log-path", str(root)],
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=root,
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        if server.poll() is not None:
            unavailable(f"olah exited with code {server.returncode}:\n{log.read_text()[-2000:]}")
        try:
            urllib.request.urlopen(url + "/api/models/none/none/revision/main", timeout=2)
            break
        except urllib.error.HTTPError:  # any HTTP answer means the server is up
            break
        except OSError:
            if time.monotonic() > deadline:
                server.kill()
                server.wait()
                unavailable(f"olah did not answer on {url} within 60 s:\n{log.read_text()[-2000:]}")
            time.sleep(0.3)
    yield LocalHub(url, mirrors, log)
    server.terminate()
    try:
        server.wait(timeout=10)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()


@pytest.fixture(scope="module")
def commits(hub):
    """Every captured `create_commit` call: (repo_id, revision, operations)."""
    return []


@pytest.fixture
def hub_api(hub, commits, monkeypatch):
    """HfApi reads go to the local server; repo creation and commits are applied to its git repositories."""
    monkeypatch.setattr(huggingface_hub.constants, "ENDPOINT", hub.url)
    template = hub.url + "/{repo_id}/resolve/{revision}/{filename}"
    monkeypatch.setattr(huggingface_hub.constants, "HUGGINGFACE_CO_URL_TEMPLATE", template)

    def create_repo(self, repo_id, *, exist_ok=False, **kwargs):
        path = hub.repo_dir(repo_id)
        if not path.exists():  # what the Hub does: a repository with a .gitattributes on main
            path.mkdir(parents=True)
            hub.git(repo_id, "init", "-q", "-b", "main")
            (path / ".gitattributes").write_text("*.safetensors filter=lfs diff=lfs merge=lfs -text\n")
            hub.git(repo_id, "add", "-A")
            hub.git(repo_id, "commit", "-q", "-m", "initial commit")
        elif not exist_ok:
            raise AssertionError(f"create_repo({repo_id!r}) without exist_ok on an existing repository")
        return RepoUrl(f"{hub.url}/{repo_id}", endpoint=hub.url)

    def create_branch(self, repo_id, *, branch, exist_ok=False, **kwargs):
        if branch not in hub.git(repo_id, "branch", "--list", branch):
            hub.git(repo_id, "branch", branch, "main")

    def create_commit(self, repo_id, operations, *, commit_message, revision=None, create_pr=False, **kwargs):
        assert not create_pr, "pull requests are not captured by this test"
        operations = list(operations)
        commits.append((repo_id, revision, operations))
        path = hub.repo_dir(repo_id)
        hub.git(repo_id, "checkout", "-q", revision or "main")
        for op in operations:
            target = path / op.path_in_repo
            if isinstance(op, CommitOperationDelete):
                target.unlink()
            elif isinstance(op, CommitOperationAdd):
                target.parent.mkdir(parents=True, exist_ok=True)
                source = op.path_or_fileobj
                target.write_bytes(source if isinstance(source, bytes) else Path(source).read_bytes())
            else:
                raise AssertionError(f"unexpected commit operation {op!r}")
        hub.git(repo_id, "add", "-A")
        if hub.git(repo_id, "status", "--porcelain"):  # like huggingface_hub, no empty commit when nothing changed
            hub.git(repo_id, "commit", "-q", "-m", commit_message)
        sha = hub.git(repo_id, "rev-parse", "HEAD")
        hub.git(repo_id, "checkout", "-q", "main")
        return CommitInfo(
            commit_url=f"{hub.url}/{repo_id}/commit/{sha}",
            commit_message=commit_message,
            commit_description="",
            oid=sha,
            pr_url=None,
        )

    def validate_yaml(self, content, **kwargs):  # the Hub's /api/validate-yaml: here, the metadata must parse
        ModelCard(content)

    # upload_folder sends its commit through `create_commit` when hf_xet is absent (with it, through a pipeline this
    # local server does not speak): take that path, so the commit is captured here.
    monkeypatch.setattr(huggingface_hub.hf_api, "is_xet_available", lambda: False)
    monkeypatch.setattr(HfApi, "_validate_yaml", validate_yaml)
    monkeypatch.setattr(HfApi, "create_repo", create_repo)
    monkeypatch.setattr(HfApi, "create_branch", create_branch)
    monkeypatch.setattr(HfApi, "create_commit", create_commit)
    return hub


def _per_image_logits(model, pixel_values: torch.Tensor) -> torch.Tensor:
    """Logits [N,C], one image per forward pass (as the pipeline runs), so every path is compared bit for bit."""
    with torch.no_grad():
        return torch.cat([model(pixel_values=pixel_values[i : i + 1]).logits for i in range(len(pixel_values))])


def _pushed_logits(model, repo_dir: Path, pixel_values: torch.Tensor) -> torch.Tensor:
    """Logits of the model loaded from the pushed files (the server's work tree): what every pull must reproduce bit
    for bit. They match the in-memory model to float rounding only: tensors loaded from safetensors are not 64-byte
    aligned, so BLAS may sum in another order."""
    pushed = _per_image_logits(TipAdapterForImageClassification.from_pretrained(repo_dir), pixel_values)
    torch.testing.assert_close(pushed, _per_image_logits(model, pixel_values), rtol=1e-5, atol=1e-5)
    return pushed


# Runs in a fresh interpreter: argv = repo_id, first commit sha, image paths file, output file.
PULL = """
import json, sys
repo, first, images_file, out_file = sys.argv[1:5]
sys.modules["hf_tip"] = None  # hf_tip cannot be imported: only the repository's own code runs
import torch
from PIL import Image
from safetensors.torch import save_file
from transformers import AutoModelForImageClassification, pipeline

images = [Image.open(p).convert("RGB") for p in json.loads(open(images_file).read())]

def logits(model, pixel_values):
    with torch.no_grad():
        return torch.cat([model(pixel_values=pixel_values[i : i + 1]).logits for i in range(len(pixel_values))])

def pipeline_logits(classifier):
    labels = classifier.model.config.id2label
    rows = classifier(images, function_to_apply="none", top_k=len(labels))
    return torch.tensor([[{d["label"]: d["score"] for d in row}[labels[i]] for i in range(len(labels))] for row in rows])

out, info = {}, {}
remote = AutoModelForImageClassification.from_pretrained(repo, trust_remote_code=True)
info["remote_module"] = type(remote).__module__
pixel_values = remote.processor(images=images, return_tensors="pt")["pixel_values"]
out["remote"] = logits(remote, pixel_values)
first_model = AutoModelForImageClassification.from_pretrained(repo, trust_remote_code=True, revision=first)
out["remote_first"] = logits(first_model, pixel_values)
out["pipeline_remote"] = pipeline_logits(pipeline("image-classification", model=repo, trust_remote_code=True))

del sys.modules["hf_tip"]
import hf_tip

model = hf_tip.TipAdapterForImageClassification.from_pretrained(repo)
info["hf_tip_tokenizer"] = type(model.processor.tokenizer).__name__
out["hf_tip"] = logits(model, model.processor(images=images, return_tensors="pt")["pixel_values"])
out["hf_tip_first"] = logits(hf_tip.TipAdapterForImageClassification.from_pretrained(repo, revision=first), pixel_values)
out["pipeline_hf_tip"] = pipeline_logits(pipeline("image-classification", model=repo))
save_file({k: v.contiguous() for k, v in out.items()}, out_file)
print("INFO " + json.dumps(info))
"""


def _pull(tmp_path: Path, env: dict[str, str], repo_id: str, first: str, images_file: Path, tag: str) -> dict:
    out_file = tmp_path / f"pulled-{tag}.safetensors"
    done = subprocess.run(
        [sys.executable, "-c", PULL, repo_id, first, str(images_file), str(out_file)],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, f"pull ({tag}) failed:\n{done.stdout[-3000:]}\n{done.stderr[-6000:]}"
    info = json.loads(next(line for line in done.stdout.splitlines() if line.startswith("INFO "))[5:])
    return {"info": info, **load_file(out_file)}


def test_push_then_pull_by_repo_id_in_fresh_processes(hub_api, commits, tiny_clip, tmp_path):
    """push_to_hub twice; a fresh process pulls by repo id through the server (online, then HF_HUB_OFFLINE=1 from
    the cache) and gets the logits of the pushed files bit for bit via AutoModelForImageClassification with remote code and no
    hf_tip, the pipeline, TipAdapterForImageClassification.from_pretrained, and the first commit by its sha."""
    clip, processor = tiny_clip
    model = TipAdapterForImageClassification.from_clip(
        clip, CLASS_NAMES, templates=["a photo of a {}."], processor=processor, alpha=1.5, beta=4.0
    )
    labels = [0, 1, 2, 0, 1, 2]
    model.build_cache(make_images(labels, seed=1), labels, augment_epochs=2, show_progress=False)
    model.card_data = dict(CARD_DATA)
    repo_id = "hf-tip-tests/tip-adapter-tiny"

    paths = []
    for i, image in enumerate(make_images([0, 1, 2, 2], seed=7)):
        paths.append(tmp_path / f"query-{i}.png")
        image.save(paths[-1])
    images_file = tmp_path / "images.json"
    images_file.write_text(json.dumps([str(p) for p in paths]))
    from PIL import Image

    pixel_values = processor(images=[Image.open(p).convert("RGB") for p in paths], return_tensors="pt")["pixel_values"]

    first = model.push_to_hub(repo_id, commit_message="first").oid
    first_logits = _pushed_logits(model, hub_api.repo_dir(repo_id), pixel_values)
    model.config.alpha, model.config.beta = 3.0, 1.0  # a second commit with other logits
    second = model.push_to_hub(repo_id, commit_message="second").oid
    logits = _pushed_logits(model, hub_api.repo_dir(repo_id), pixel_values)
    assert first != second and not torch.allclose(first_logits, logits)

    # the first commit uploaded a complete repository, README.md card included
    uploaded = {op.path_in_repo for op in commits[0][2] if isinstance(op, CommitOperationAdd)}
    for name in ("config.json", "model.safetensors", "README.md", "preprocessor_config.json", "processor_config.json"):
        assert name in uploaded
    assert {"modeling_tip_adapter.py", "configuration_tip_adapter.py", "cache.py", "search.py"} <= uploaded
    assert missing_files(hub_api.repo_dir(repo_id)) == []
    card = ModelCard.load(hub_api.repo_dir(repo_id) / "README.md")
    assert card.data.library_name == "transformers" and card.data.pipeline_tag == "image-classification"
    assert {r.metric_value for r in card.data.eval_results} == {0.25, 0.75}
    assert f'model="{repo_id}"' in card.text  # usage examples name the repo, not the temporary folder

    base = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGINGFACE_"))}
    base.update(HF_HOME=str(tmp_path / "hf-home"), HF_HUB_DISABLE_TELEMETRY="1", PYTHONPATH=str(ROOT))
    online = _pull(tmp_path, {**base, "HF_ENDPOINT": hub_api.url}, repo_id, first, images_file, "online")
    # offline: the same loads from the cache, with the server's address pointing nowhere
    dead = f"http://127.0.0.1:{_free_port()}"
    offline = _pull(tmp_path, {**base, "HF_ENDPOINT": dead, "HF_HUB_OFFLINE": "1"}, repo_id, first, images_file, "off")

    for pulled in (online, offline):
        assert pulled["info"]["remote_module"].startswith("transformers_modules.")  # the repo's code, not hf_tip's
        assert pulled["info"]["hf_tip_tokenizer"] == "CLIPTokenizer"  # processor loaded in full
        for key in ("remote", "pipeline_remote", "hf_tip", "pipeline_hf_tip"):
            assert torch.equal(pulled[key], logits), key
        for key in ("remote_first", "hf_tip_first"):
            assert torch.equal(pulled[key], first_logits), key

    # every file the loaders asked for was in the repository: no 401 (only optional probes got the Hub's 404)
    shim = hub_api.shim_lines()
    assert not [line for line in shim if line.startswith("hub-shim: 401")], shim


def test_push_replaces_stale_weight_shards(hub_api, commits, adapter):
    """A sharded push followed by a single-file push deletes the old shards and index in the same commit."""
    repo_id = "hf-tip-tests/resharded"
    adapter.push_to_hub(repo_id, max_shard_size="100KB")
    tree = set(hub_api.git(repo_id, "ls-files").splitlines())
    assert "model.safetensors.index.json" in tree and "model.safetensors" not in tree
    shards = {name for name in tree if name.startswith("model-")}
    assert len(shards) > 1

    adapter.push_to_hub(repo_id)
    deleted = {op.path_in_repo for op in commits[-1][2] if isinstance(op, CommitOperationDelete)}
    assert deleted == shards | {"model.safetensors.index.json"}
    tree = set(hub_api.git(repo_id, "ls-files").splitlines())
    assert "model.safetensors" in tree and not tree & deleted
    assert missing_files(hub_api.repo_dir(repo_id)) == []


def test_push_keeps_a_users_readme_on_the_hub(hub_api, adapter):
    """A README.md on the Hub that hf_tip did not write is kept (with a warning); a generated one is replaced."""
    repo_id = "hf-tip-tests/user-card"
    adapter.push_to_hub(repo_id)
    readme = hub_api.repo_dir(repo_id) / "README.md"
    readme.write_text("# My own card\n")
    hub_api.git(repo_id, "commit", "-qam", "user card")
    with pytest.warns(UserWarning, match="not generated by hf_tip"):
        adapter.push_to_hub(repo_id)
    assert readme.read_text() == "# My own card\n"


def test_cli_push_uploads_a_saved_folder(hub_api, adapter, tmp_path, capsys):
    """`hf-tip push FOLDER` uploads the folder with the card re-rendered for the repo id, on a new branch; the folder
    is left as it was; an incomplete folder is refused, naming the missing files."""
    folder = tmp_path / "saved"
    adapter.card_data = dict(CARD_DATA)
    adapter.save_pretrained(folder)
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    repo_id = "hf-tip-tests/from-cli"
    argv = ["push", str(folder), "--hub_model_id", repo_id, "--revision", "v1", "--commit_message", "from the CLI"]
    assert cli_main(argv) == 0
    assert "commit" in capsys.readouterr().out
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before
    assert hub_api.git(repo_id, "log", "-1", "--format=%s", "v1") == "from the CLI"
    card = hub_api.git(repo_id, "show", "v1:README.md")
    assert f'model="{repo_id}"' in card and "75.00 %" in card  # results kept through the card's stored data

    # a fine-tuning run's checkpoints (pickled RNG states, optimizer) and tracker logs never reach the Hub
    (folder / "checkpoints" / "epoch_0").mkdir(parents=True)
    (folder / "checkpoints" / "epoch_0" / "random_states_0.pkl").write_bytes(b"pickle")
    (folder / "logs").mkdir()
    (folder / "logs" / "events").write_text("log")
    assert cli_main(["push", str(folder), "--hub_model_id", repo_id, "--revision", "v2"]) == 0
    pushed = hub_api.git(repo_id, "ls-tree", "-r", "--name-only", "v2").split()
    assert "model.safetensors" in pushed and not [f for f in pushed if f.startswith(("checkpoints/", "logs/"))]

    (folder / "preprocessor_config.json").unlink()
    (folder / "cache.py").unlink()
    assert cli_main(["push", str(folder), "--hub_model_id", repo_id]) == 1
    error = capsys.readouterr().err
    assert "cache.py" in error and "preprocessor_config.json" in error


def test_save_pretrained_push_to_hub_and_tags(hub_api, adapter, tmp_path):
    """`save_pretrained(folder, push_to_hub=True, repo_id=...)` pushes the same complete repo; `tags` reach the card."""
    repo_id = "hf-tip-tests/saved-and-pushed"
    adapter.save_pretrained(tmp_path / "out", push_to_hub=True, repo_id=repo_id)
    assert missing_files(hub_api.repo_dir(repo_id)) == []
    assert f'model="{repo_id}"' in (hub_api.repo_dir(repo_id) / "README.md").read_text()
    adapter.push_to_hub(repo_id, tags=["textiles"])
    card = ModelCard.load(hub_api.repo_dir(repo_id) / "README.md")
    assert {"textiles", "tip-adapter"} <= set(card.data.tags)
