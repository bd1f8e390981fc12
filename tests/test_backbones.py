import os

import pytest
import timm
import torch
from safetensors.torch import save_file

from exdd_lab.errors import BackboneError, WeightsNotFoundError
from exdd_lab.features import create_backbone, resolve_weights

TINY = "test_efficientnet"  # timm's own tiny test architecture: builds in milliseconds


@pytest.fixture()
def weights_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("EXDD_LAB_WEIGHTS", str(tmp_path / "weights"))
    return tmp_path / "weights"


def tiny_state(seed=0):
    torch.manual_seed(seed)
    return timm.create_model(TINY).state_dict()


def test_unknown_backbone_suggests_close_names():
    with pytest.raises(BackboneError, match="unknown backbone 'resnet181'") as info:
        resolve_weights("resnet181")
    assert "resnet18" in str(info.value)


def test_random_weights_only_when_asked_and_said_plainly():
    model, source = create_backbone(TINY, "random", out_indices=(1, 2))
    assert source.kind == "random" and "RANDOM" in source.description
    assert model.feature_info.channels() == [24, 32]


def test_missing_pretrained_weights_say_which_file_to_put_where(weights_folder, monkeypatch, tmp_path):
    import huggingface_hub.constants as hc

    monkeypatch.setattr(hc, "HF_HUB_CACHE", str(tmp_path / "empty-hub"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty-torch"))
    with pytest.raises(WeightsNotFoundError) as info:
        resolve_weights(TINY, "imagenet")
    message = str(info.value)
    assert str(weights_folder / f"{TINY}.safetensors") in message
    assert "weights='random'" in message


def test_weights_from_the_weights_folder_are_loaded_exactly(weights_folder):
    state = tiny_state(1)
    weights_folder.mkdir()
    save_file(state, weights_folder / f"{TINY}.safetensors")
    model, source = create_backbone(TINY, "imagenet", out_indices=(1, 2))
    assert source.kind == "file"
    loaded = model.state_dict()
    assert loaded and all(torch.equal(loaded[k], state[k]) for k in loaded)


def test_weights_from_an_explicit_pth_file(tmp_path):
    state = tiny_state(2)
    torch.save(state, tmp_path / "mine.pth")
    model, source = create_backbone(TINY, tmp_path / "mine.pth", out_indices=(2,))
    assert source.kind == "file" and "mine.pth" in source.description
    assert all(torch.equal(v, state[k]) for k, v in model.state_dict().items())
    with pytest.raises(WeightsNotFoundError, match="not found"):
        resolve_weights(TINY, tmp_path / "absent.pth")


def test_weights_found_in_the_local_hugging_face_cache(weights_folder, monkeypatch, tmp_path):
    hub = tmp_path / "hub"
    hub_id = timm.models.get_pretrained_cfg(TINY).to_dict()["hf_hub_id"]
    repo = hub / f"models--{hub_id.replace('/', '--')}"
    snapshot = repo / "snapshots" / "0123abcd"
    snapshot.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0123abcd")
    state = tiny_state(3)
    save_file(state, snapshot / "model.safetensors")
    monkeypatch.setenv("HF_HUB_CACHE", str(hub))
    import huggingface_hub.constants as hc

    monkeypatch.setattr(hc, "HF_HUB_CACHE", str(hub))
    source = resolve_weights(TINY, "imagenet")
    assert source.kind == "hf-cache" and os.path.samefile(source.path, snapshot / "model.safetensors")
    model, _ = create_backbone(TINY, "imagenet", out_indices=(1,))
    assert all(torch.equal(v, state[k]) for k, v in model.state_dict().items())


def test_weights_of_another_architecture_are_refused(tmp_path):
    save_file(timm.create_model("test_resnet").state_dict(), tmp_path / "resnet.safetensors")
    with pytest.raises(WeightsNotFoundError, match="do not fit backbone test_efficientnet"):
        create_backbone(TINY, tmp_path / "resnet.safetensors")
    partial = tiny_state()
    partial.pop("conv_stem.weight")
    save_file(partial, tmp_path / "partial.safetensors")
    with pytest.raises(WeightsNotFoundError, match="conv_stem.weight"):
        create_backbone(TINY, tmp_path / "partial.safetensors")


def test_layer_index_out_of_range():
    with pytest.raises(BackboneError, match="pick feature indices"):
        create_backbone(TINY, "random", out_indices=(9,))
