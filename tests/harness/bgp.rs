//! A raw BGP speaker on wren's own codec (wren::wire).
