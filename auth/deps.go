package auth

// Pins auth's dependencies in go.mod until the code uses them.
// Delete this file once auth imports them for real.
import (
	_ "github.com/golang-jwt/jwt/v5"
	_ "golang.org/x/crypto/bcrypt"
)
