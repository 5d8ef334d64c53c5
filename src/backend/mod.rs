//! The libtorch backend (tch): the only module that touches tch. Llama-family model, checkpoints, training, evaluation.
