"""The m3-paper text head: XLM-R's token embeddings and first layer, loaded by name and fine-tuned (a tiny
random XLM-R saved here stands in for FacebookAI/xlm-roberta-large)."""

import pytest
import torch
import torch.nn.functional as F

from polymodal.baselines.encoders.m3 import paper_heads

transformers = pytest.importorskip("transformers")
VOCAB, PAD = 40, 1


@pytest.fixture(scope="module")
def xlmr(tmp_path_factory):
    path = tmp_path_factory.mktemp("xlmr")
    torch.manual_seed(0)
    config = transformers.XLMRobertaConfig(vocab_size=VOCAB, hidden_size=16, num_hidden_layers=3, num_attention_heads=2,
                                           intermediate_size=32, max_position_embeddings=40, pad_token_id=PAD)
    model = transformers.XLMRobertaModel(config, add_pooling_layer=False)
    model.save_pretrained(path)
    return path, model.eval()


def heads(path, **options):
    torch.manual_seed(1)
    return paper_heads({"image": 9, "audio": 7, "text": 12}, 8, text_model=str(path), text_vocab=VOCAB + 1,
                       text_pad=PAD, **options)


def test_the_text_head_is_the_saved_models_embeddings_and_first_layer_plus_missing(xlmr):
    path, full = xlmr
    text = heads(path)["text"].eval()
    assert len(text.encoder.encoder.layer) == 1
    table = text.encoder.get_input_embeddings().weight
    assert table.shape == (VOCAB + 1, 16)  # XLM-R's vocabulary and [MISSING]
    torch.testing.assert_close(table[:VOCAB], full.get_input_embeddings().weight)
    ids = torch.tensor([[0, 5, 9, 2, PAD, PAD], [0, 7, 2, PAD, PAD, PAD]])
    # Independently: the saved model loaded with one layer, mean-pooled, then the head's Linear and LayerNorm.
    one = transformers.XLMRobertaModel.from_pretrained(path, num_hidden_layers=1, add_pooling_layer=False).eval()
    with torch.no_grad():
        mask = ids != PAD
        hidden = one(input_ids=ids, attention_mask=mask.long()).last_hidden_state
        pooled = (hidden * mask[..., None]).sum(1) / mask.sum(1, keepdim=True)
        expected = F.layer_norm(text.linear(pooled), (8,), text.norm.weight, text.norm.bias)
        torch.testing.assert_close(text(ids), expected, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(text(ids[:, :4]), text(ids))  # trailing pads change nothing


def test_the_text_head_fine_tunes_embeddings_and_layer(xlmr):
    path, _ = xlmr
    text = heads(path, text_layers=2)["text"]
    assert len(text.encoder.encoder.layer) == 2
    out = text(torch.tensor([[0, 5, VOCAB, 2, PAD]]))  # VOCAB: the [MISSING] token
    (out * torch.arange(8.0)).sum().backward()  # not a plain sum: that of a LayerNorm output has no gradient
    assert text.encoder.get_input_embeddings().weight.grad[VOCAB].abs().sum() > 0
    assert all(p.grad is not None for p in text.encoder.encoder.layer.parameters())
