package main

import (
	"fmt"
	"io"
)

// printQuickStart shows a -dev user how to go from nothing to a push in a
// browser, with commands ready to paste.
func printQuickStart(w io.Writer, s *server) {
	api := "http://" + hostPort(s.httpLn.Addr())
	fmt.Fprintf(w, `
turnstile is running in DEVELOPMENT mode (-dev): demo user, random keys, any Origin.
Never use -dev in production.

  publish key (this run only): %[2]s

Open %[1]s/#publish-key=%[2]s in a browser for the demo page (the key after # stays in
the browser: it fills the page's publish box), or:

1. Log in and trade the token for a one-time ticket:

  TOKEN=$(curl -s -X POST %[1]s/auth -d '{"user":"maggie","pwd":"secret"}' | sed -E 's/.*"token":"([^"]+)".*/\1/')
  curl -s -H "Authorization: Bearer $TOKEN" %[1]s/ws_ticket

2. In a browser console (any page), connect and log what arrives:

  const api = "%[1]s";
  const {token} = await (await fetch(api + "/auth", {method: "POST", body: JSON.stringify({user: "maggie", pwd: "secret"})})).json();
  const {url} = await (await fetch(api + "/ws_ticket", {headers: {Authorization: "Bearer " + token}})).json();
  const ws = new WebSocket(url);
  ws.onmessage = (e) => console.log(JSON.parse(e.data));

3. Push to maggie, or to everyone:

  curl -s -X POST %[1]s/publish -H "Authorization: Bearer %[2]s" -d '{"user":"maggie","data":{"hello":"world"}}'
  curl -s -X POST %[1]s/publish -H "Authorization: Bearer %[2]s" -d '{"broadcast":true,"data":"hi all"}'

`, api, s.publishKey)
}
