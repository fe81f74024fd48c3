//! lda: the local delivery agent — classify, mark and append each message to the right mbox folder, whole or not at all. (Filled by the lda issue.)
