package app

import (
	"net/http"

	"github.com/godwit-dev/godwit/internal/errs"
	"github.com/godwit-dev/godwit/internal/platform/auth"
	"github.com/godwit-dev/godwit/internal/platform/httpx"
)

// revokeRoute lets an admin revoke a token (e.g. a leaked member or service
// token); every replica refuses it from the next request on.
func (a *App) revokeRoute(rev *auth.Revocations) httpx.Route {
	return httpx.Route{Method: "POST", Pattern: "/v1/admin/tokens/revocations", Summary: "Revoke a bearer token", Access: auth.AdminOnly,
		Handler: func(w http.ResponseWriter, r *http.Request) error {
			var body struct {
				Token string `json:"token"`
			}
			if err := httpx.Decode(r, &body); err != nil {
				return err
			}
			if body.Token == "" {
				return errs.Coded(errs.Invalid, "invalid_field", "token is required").With("field", "token")
			}
			p, err := a.Keys.Verify(body.Token)
			if err != nil && errs.Is(err, auth.CodeInvalidToken) {
				// A load-test pass is revoked the same way.
				if lp, perr := a.Keys.VerifyLoadTestPass(body.Token); perr == nil {
					p, err = lp, nil
				}
			}
			if err != nil {
				if errs.Is(err, auth.CodeTokenExpired) {
					return errs.Coded(errs.Unprocessable, "token_expired", "the token has already expired; nothing to revoke")
				}
				return errs.Coded(errs.Unprocessable, "invalid_token", "the token is not one this server signed").With("field", "token")
			}
			if err := rev.Revoke(r.Context(), p, auth.FromContext(r.Context()).Actor()); err != nil {
				return err
			}
			httpx.WriteJSON(w, http.StatusCreated, map[string]any{
				"token_id": p.TokenID, "scope": p.Scope, "subject": p.Subject, "expires_at": p.Expires,
			})
			return nil
		}}
}
