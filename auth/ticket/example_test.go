package ticket_test

import (
	"context"
	"fmt"
	"time"

	"github.com/turnstile-push/turnstile/auth/ticket"
)

// The HTTP handler issues a ticket for a verified token; the WebSocket
// listener redeems the ticket text from the upgrade URL, once.
func ExampleMap() {
	store := ticket.NewMap(ticket.MapConfig{Capacity: 1024})
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	go store.Run(ctx, 30*time.Second) // reclaim expired tickets in the background

	now := time.Now()
	t, err := store.Issue(ticket.Claims{Subject: "maggie"}, now, 30*time.Second)
	if err != nil {
		fmt.Println(err) // ticket.ErrFull: answer 503
		return
	}
	url := "ws://localhost:8081/ws?ticket=" + t.String()

	text := []byte(url[len(url)-ticket.TextLen:]) // the engine's URI bytes
	claims, err := store.Redeem(text, now.Add(time.Second))
	fmt.Println(claims.Subject, err)
	_, err = store.Redeem(text, now.Add(time.Second))
	fmt.Println(err)
	// Output:
	// maggie <nil>
	// ticket: missing, unknown, expired or already used
}
