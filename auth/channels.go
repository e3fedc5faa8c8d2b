package auth

import (
	"encoding/json"
	"errors"

	"github.com/golang-jwt/jwt/v5"
)

// errChannelsClaim: the channels claim is present but not a list of strings.
var errChannelsClaim = errors.New("channels claim is not a list of strings")

// tokenClaims reads the registered claims and the channels claim, whose
// name is configured (TokenConfig.ChannelsClaim).
type tokenClaims struct {
	jwt.RegisteredClaims
	channelsClaim string
	channels      []string
}

// UnmarshalJSON decodes the registered claims, then the channels claim.
func (c *tokenClaims) UnmarshalJSON(b []byte) error {
	if err := json.Unmarshal(b, &c.RegisteredClaims); err != nil {
		return err
	}
	var all map[string]json.RawMessage
	if err := json.Unmarshal(b, &all); err != nil {
		return err
	}
	raw, ok := all[c.channelsClaim]
	if !ok || string(raw) == "null" {
		return nil
	}
	if err := json.Unmarshal(raw, &c.channels); err != nil {
		return errChannelsClaim
	}
	return nil
}

// withChannels is what Sign writes when tokens carry channels: the
// registered claims plus the channels claim under its configured name.
type withChannels struct {
	jwt.RegisteredClaims
	name     string
	channels []string
}

// MarshalJSON writes the registered claims and the channels claim.
func (c withChannels) MarshalJSON() ([]byte, error) {
	b, err := json.Marshal(c.RegisteredClaims)
	if err != nil {
		return nil, err
	}
	var all map[string]any
	if err := json.Unmarshal(b, &all); err != nil {
		return nil, err
	}
	all[c.name] = c.channels
	return json.Marshal(all)
}
