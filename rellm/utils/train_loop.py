"""The pieces every small hand-written training loop shares: batches in a fresh random order each epoch and one
optimizer step (stage 2a's emotion encoder, the CTC warm-up of stage 4, the EPITOME classifiers of stage 6).

Stage 4's alignment steps run in SpeechBrain's ``Brain`` instead (``rellm.training.brain``). In ``rellm.utils`` so
that stage 6, which builds on none of the pipeline's code, uses the same step. torch is imported by the functions.
"""


def shuffled_batches(n, batch_size, generator):
    """Index batches of ``range(n)`` in a fresh random order (``torch.randperm`` with ``generator``)."""
    import torch

    order = torch.randperm(n, generator=generator).tolist()
    return [order[i: i + batch_size] for i in range(0, len(order), batch_size)]


def optimizer_step(loss, optimizer, params, max_norm, scheduler=None):
    """One step: clear the gradients, backpropagate ``loss``, clip the gradient norm of ``params`` to ``max_norm``,
    step the optimizer, then the learning-rate ``scheduler`` (when given)."""
    import torch

    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(params, max_norm)
    optimizer.step()
    if scheduler is not None:
        scheduler.step()
