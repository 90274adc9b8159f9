"""Independent float64 NumPy implementation of the MLP loss and its gradient."""

import numpy as np


def act(name, z):
    if name == "identity":
        return z
    if name == "relu":
        return np.maximum(z, 0.0)
    if name == "softplus":
        return np.logaddexp(0.0, z)
    if name == "tanh":
        return np.tanh(z)
    if name == "sigmoid":
        return 0.5 * (1.0 + np.tanh(0.5 * z))
    raise ValueError(name)


def dact(name, z):
    if name == "identity":
        return np.ones_like(z)
    if name == "relu":
        return (z > 0).astype(np.float64)
    if name in ("softplus", "sigmoid"):
        s = 0.5 * (1.0 + np.tanh(0.5 * z))
        return s if name == "softplus" else s * (1.0 - s)
    if name == "tanh":
        return 1.0 - np.tanh(z) ** 2
    raise ValueError(name)


def loss_and_grad(net, theta, X, y=None):
    """Mean loss and gradient of one vector theta (D,), all in float64."""
    theta = np.asarray(theta, dtype=np.float64)
    X = np.asarray(X, dtype=np.float64)
    layers = net.unflatten(theta)
    L = len(layers)
    names = list(net.activations) + [net.output]
    a, zs, As = X, [], [X]
    for l, (W, b) in enumerate(layers):
        z = a @ W.T + (b if b is not None else 0.0)
        zs.append(z)
        a = act(names[l], z)
        As.append(a)
    n = X.shape[0]
    if net.loss == "cross_entropy":
        m = a.max(axis=1, keepdims=True)
        lse = m[:, 0] + np.log(np.exp(a - m).sum(axis=1))
        loss = np.mean(lse - a[np.arange(n), y])
        p = np.exp(a - lse[:, None])
        p[np.arange(n), y] -= 1.0
        da = p / n
    else:
        t = X if y is None else np.asarray(y, dtype=np.float64)
        loss = np.mean((a - t) ** 2)
        da = 2.0 * (a - t) / a.size
    grads = []
    for l in range(L - 1, -1, -1):
        W, b = layers[l]
        dz = da * dact(names[l], zs[l])
        gW = dz.T @ As[l]
        gb = dz.sum(axis=0) if b is not None else None
        grads.append((gW, gb))
        da = dz @ W
    grads.reverse()
    return loss, net.flatten(grads)


def accuracy(net, theta, X, y):
    a = np.asarray(X, dtype=np.float64)
    names = list(net.activations) + [net.output]
    for l, (W, b) in enumerate(net.unflatten(np.asarray(theta, np.float64))):
        a = act(names[l], a @ W.T + (b if b is not None else 0.0))
    return np.mean(a.argmax(axis=1) == y)


def path_gradient_check(pb, C, rng, h=1e-6):
    """A core PathBatch's objective gradient at coefficients C against central finite
    differences along a random direction."""
    _, g, _ = pb.objective(C)
    d = rng.standard_normal(C.shape)
    fd = (pb.objective(C + h * d, grad=False)[0] - pb.objective(C - h * d, grad=False)[0]) / (2 * h)
    np.testing.assert_allclose(np.sum(g * d, axis=(1, 2)), fd, rtol=1e-5, atol=1e-8)
