package auth

import (
	"encoding/json"
	"fmt"

	"github.com/golang-jwt/jwt/v5"
)

// claimsOf reads what turnstile needs from a token whose signature and
// registered claims the parser has checked. One small function per claim,
// so that a new claim (channels) is one more line here.
func (t *Tokens) claimsOf(mc jwt.MapClaims) (Claims, error) {
	user, err := stringClaim(mc, t.cfg.UserClaim)
	if err != nil {
		return Claims{}, err
	}
	exp, err := mc.GetExpirationTime()
	if err != nil || exp == nil { // the parser requires exp; never trust one option alone
		return Claims{}, fmt.Errorf("%w: no exp", jwt.ErrTokenRequiredClaimMissing)
	}
	// exp is exact (TokenConfig.Leeway): the parser forgave the leeway.
	if !t.cfg.Now().Before(exp.Time) {
		return Claims{}, jwt.ErrTokenExpired
	}
	c := Claims{Subject: user, Expires: exp.Time}
	if iat, err := mc.GetIssuedAt(); err == nil && iat != nil {
		c.IssuedAt = iat.Time
	}
	c.ID, _ = mc["jti"].(string)
	if c.Channels, err = channelsClaim(mc, t.cfg.ChannelsClaim); err != nil {
		return Claims{}, err
	}
	return c, nil
}

// stringClaim is the claim name as a non-empty string (the user claim:
// anything else would name no one, or someone by accident).
func stringClaim(mc jwt.MapClaims, name string) (string, error) {
	s, ok := mc[name].(string)
	if !ok || s == "" {
		return "", fmt.Errorf("%w (%q)", ErrNoUser, name)
	}
	return s, nil
}

// extraClaims are the claims Sign writes beside the registered ones, or
// nil: the user under the user claim when it is not sub, so that the
// server's own tokens verify at itself. One line per configured claim.
func (t *Tokens) extraClaims(user string) map[string]any {
	var extra map[string]any
	if t.cfg.UserClaim != DefaultUserClaim {
		extra = map[string]any{t.cfg.UserClaim: user}
	}
	if len(t.cfg.Channels) > 0 {
		extra = withClaim(extra, t.cfg.ChannelsClaim, t.cfg.Channels)
	}
	return extra
}

// withExtra marshals the registered claims and extra claims in one object.
type withExtra struct {
	jwt.RegisteredClaims
	extra map[string]any
}

func (w withExtra) MarshalJSON() ([]byte, error) {
	reg, err := json.Marshal(w.RegisteredClaims)
	if err != nil {
		return nil, err
	}
	var m map[string]any
	if err := json.Unmarshal(reg, &m); err != nil {
		return nil, err
	}
	for k, v := range w.extra {
		m[k] = v
	}
	return json.Marshal(m)
}
