package faults

import (
	"net/http"
	"time"

	"github.com/godwit-dev/godwit/internal/platform/auth"
	"github.com/godwit-dev/godwit/internal/platform/httpx"
)

// Routes returns the admin routes of every point registered in this process:
// GET /v1/admin/faults lists them, GET and PUT /v1/admin/faults/{point} read
// and set one. In split mode a process serves only its own services' points.
func (s *Store) Routes() []httpx.Route {
	return []httpx.Route{
		{Method: "GET", Pattern: "/v1/admin/faults", Summary: "Every fault point of this process and its setting", Access: auth.AdminOnly, Handler: s.handleList},
		{Method: "GET", Pattern: "/v1/admin/faults/{point}", Summary: "A fault point's setting", Access: auth.AdminOnly, Handler: s.handleGet},
		{Method: "PUT", Pattern: "/v1/admin/faults/{point}", Summary: "Make a fault point fail, slow down or decline, for every replica", Access: auth.AdminOnly, Handler: s.handlePut},
	}
}

// SettingJSON is a point's setting as the API shows it: only the knobs the
// point honours appear.
type SettingJSON struct {
	Point              string     `json:"point"`
	Summary            string     `json:"summary"`
	Fail               *bool      `json:"fail,omitempty"`
	DelayMS            *int64     `json:"delay_ms,omitempty"`
	DeclineRatePercent *int64     `json:"decline_rate_percent,omitempty"`
	DeclineCode        *string    `json:"decline_code,omitempty"`
	Source             string     `json:"source"`
	UpdatedBy          string     `json:"updated_by,omitempty"`
	UpdatedAt          *time.Time `json:"updated_at,omitempty"`
}

// settingsRequest is a PUT body; an absent knob is set to zero (a decline
// code to the point's default).
type settingsRequest struct {
	Fail               bool   `json:"fail"`
	DelayMS            int64  `json:"delay_ms"`
	DeclineRatePercent int64  `json:"decline_rate_percent"`
	DeclineCode        string `json:"decline_code"`
}

func (s *Store) view(st Setting) SettingJSON {
	p, _ := s.point(st.Point)
	j := SettingJSON{Point: st.Point, Summary: p.Summary, Source: st.Source, UpdatedBy: st.UpdatedBy}
	if p.Fail {
		j.Fail = &st.Fail
	}
	if p.Delay {
		j.DelayMS = &st.DelayMS
	}
	if p.Decline {
		j.DeclineRatePercent, j.DeclineCode = &st.DeclineRatePercent, &st.DeclineCode
	}
	if !st.UpdatedAt.IsZero() {
		j.UpdatedAt = &st.UpdatedAt
	}
	return j
}

func (s *Store) handleList(w http.ResponseWriter, r *http.Request) error {
	all, err := s.List(r.Context())
	if err != nil {
		return err
	}
	out := make([]SettingJSON, len(all))
	for i, st := range all {
		out[i] = s.view(st)
	}
	httpx.WriteJSON(w, http.StatusOK, map[string]any{"faults": out})
	return nil
}

func (s *Store) handleGet(w http.ResponseWriter, r *http.Request) error {
	st, err := s.Read(r.Context(), r.PathValue("point"))
	if err != nil {
		return err
	}
	httpx.WriteJSON(w, http.StatusOK, s.view(st))
	return nil
}

func (s *Store) handlePut(w http.ResponseWriter, r *http.Request) error {
	name := r.PathValue("point")
	if _, err := s.point(name); err != nil {
		return err
	}
	var req settingsRequest
	if err := httpx.Decode(r, &req); err != nil {
		return err
	}
	st, err := s.Set(r.Context(), name, Settings(req))
	if err != nil {
		return err
	}
	httpx.WriteJSON(w, http.StatusOK, s.view(st))
	return nil
}
