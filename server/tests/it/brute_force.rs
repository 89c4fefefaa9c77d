//! Sign-in and identity-check limits under attack: progressive delays, trusted devices, IPv6 /64 keys, parallel guesses (issue 9).
