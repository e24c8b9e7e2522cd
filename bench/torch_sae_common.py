"""What the PyTorch eager peers in bench/ share with every husai top-k trainer: the AuxK term and the bookkeeping
after each optimiser step (decoder rows renormalised, dead-latent counters). Imported by htopk_torch.py and
routesae_torch.py (Python puts the script's own directory on the path)."""
import torch


def auxk_loss(pre, since_fired, dead_window, k_aux, W_dec, residual, coeff):
    """AuxK (Gao et al. 2024): the top k_aux raw pre-activations among latents dead for dead_window steps
    reconstruct the detached residual `residual` (x - x_hat); 0 when off or nothing is dead."""
    dead = since_fired >= dead_window
    if coeff <= 0 or not bool(dead.any()):
        return 0.0
    ka = min(k_aux, int(dead.sum()))
    av, ai = torch.topk(pre.masked_fill(~dead, float("-inf")), ka, dim=1)
    recon = (av.unsqueeze(-1) * W_dec[ai]).sum(1)
    return coeff * ((recon - residual.detach()) ** 2).sum(-1).mean()


@torch.no_grad()
def after_step(W_dec, idx, vals, since_fired):
    """Decoder rows back to unit norm; the counters of steps since each latent last fired, updated."""
    W_dec.div_(W_dec.norm(dim=1, keepdim=True))
    fired = torch.zeros(W_dec.shape[0], dtype=torch.bool)
    fired[idx[vals > 0]] = True
    return torch.where(fired, torch.zeros_like(since_fired), since_fired + 1)
