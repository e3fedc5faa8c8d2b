package auth

import (
	"errors"

	"github.com/golang-jwt/jwt/v5"
)

// errChannelsClaim: the channels claim is present but not a list of strings.
var errChannelsClaim = errors.New("channels claim is not a list of strings")

// channelsClaim reads the claim that lists the channels a user may
// subscribe to: absent or null is none; anything but a list of strings
// makes the token invalid rather than silently granting nothing.
func channelsClaim(mc jwt.MapClaims, name string) ([]string, error) {
	raw, ok := mc[name]
	if !ok || raw == nil {
		return nil, nil
	}
	list, ok := raw.([]any)
	if !ok {
		return nil, errChannelsClaim
	}
	out := make([]string, len(list))
	for i, v := range list {
		if out[i], ok = v.(string); !ok {
			return nil, errChannelsClaim
		}
	}
	return out, nil
}

// withClaim adds one claim to Sign's extra claims.
func withClaim(extra map[string]any, name string, v any) map[string]any {
	if extra == nil {
		extra = map[string]any{}
	}
	extra[name] = v
	return extra
}
