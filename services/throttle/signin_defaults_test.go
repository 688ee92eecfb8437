package throttle

import "testing"

// The default sign-in limits are the README's (configuration table:
// --signin-account-limit 5/20s, --signin-ip-limit 50/2s), and each prints
// in the form the flag takes.
//
// Mutations: services/throttle/signin.go DefaultAccountLimit's `20 *
// time.Second` and DefaultIPLimit's `2 * time.Second` → `/` (gremlins
// books them not covered: coverage never marks a var's initializer).
func TestSignInDefaultsAsDocumented(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		got  Limit
		want string
	}{{DefaultAccountLimit, "5/20s"}, {DefaultIPLimit, "50/2s"}} {
		want, err := ParseLimit(c.want)
		if err != nil {
			t.Fatal(err)
		}
		if c.got != want || c.got.String() != c.want {
			t.Errorf("default limit %v, want the documented %s", c.got, c.want)
		}
	}
}
