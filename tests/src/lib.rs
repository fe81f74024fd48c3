//! End-to-end tests across the programs, through real sockets and files. (Filled as programs land.)
