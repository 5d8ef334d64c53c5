//! Vocabulary expansion: BPE training on domain text, merge into the base tokenizer, embedding resize.
