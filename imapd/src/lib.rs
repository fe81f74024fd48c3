//! imapd: IMAP4rev1 and POP3 over the users' mbox folders, training on moves. (Filled by the imapd issue.)
