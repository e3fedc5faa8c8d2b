// Package auth decides who may ask for a WebSocket ticket: it checks logins
// against an htpasswd file of bcrypt hashes (users.go, password.go),
// throttles failed logins (throttle.go) and other failed credentials per
// address (addrlimit.go), signs and strictly verifies JWTs (token.go, the
// claims it reads in claims.go), verifies with a public key alone (keys.go)
// or with the keys of an identity provider's JWK Set (jwks.go, jwk.go),
// bounds the tickets one user may hold (ticketquota.go), and serves POST
// /auth and GET|POST /ws_ticket (handlers.go).
//
// Everything here may block for milliseconds (bcrypt, signatures, a JWKS
// refetch), so it runs on HTTP goroutines and must never be called from an
// event loop. The package must never log a password, a token or a ticket
// (jwt's error texts can quote claims, so refusals are logged by category
// only), and never accept a token whose algorithm, issuer, audience or
// expiry it did not check.
package auth
