"""The Transformer's last-token shortcut computes what the whole encoder does."""

import pytest
import torch

from il_lab.networks import TransformerNet


def whole_encoder_last_token(net: TransformerNet, windows: torch.Tensor) -> torch.Tensor:
    """The plain computation: every layer on every token, then the last token."""
    tokens = net.embed(windows) + net.position
    return net.norm(net.encoder(tokens)[:, -1])


@pytest.mark.parametrize("n_layers", [1, 3])
def test_last_token_shortcut_equals_the_whole_encoder(n_layers):
    torch.manual_seed(0)
    net = TransformerNet(
        obs_dim=5,
        context_len=4,
        d_model=32,
        n_heads=4,
        n_layers=n_layers,
        dim_feedforward=48,
        dropout=0.0,
    )
    windows = torch.randn(64, 4, 5)
    for training in (True, False):  # eval mode takes PyTorch's fused path for whole layers
        net.train(training)
        torch.testing.assert_close(net(windows), whole_encoder_last_token(net, windows))
    # ... and the same gradients for every parameter, the first layer's included.
    net.train()
    grads = []
    for forward in (net, lambda w: whole_encoder_last_token(net, w)):
        net.zero_grad()
        forward(windows).pow(2).mean().backward()
        grads.append({name: p.grad.clone() for name, p in net.named_parameters()})
    for name in grads[0]:
        torch.testing.assert_close(grads[0][name], grads[1][name], msg=name)
    # Earlier tokens matter: the last layer still attends over the whole window.
    changed = windows.clone()
    changed[:, 0] += 1.0
    assert not torch.allclose(net(windows), net(changed))
