package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRPCDList(t *testing.T) {
	var out bytes.Buffer
	run([]string{"rpcd", "list"}, nil, &out, &out)
	var m map[string]map[string]any
	if err := json.Unmarshal(out.Bytes(), &m); err != nil || m["status"] == nil {
		t.Fatalf("%q: %v", out.String(), err)
	}
}

func TestConfigErrorsNameOption(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "lora-bridge")
	for _, tc := range []struct{ body, want string }{
		{"config bridge 'main'\n\toption region 'XX'\n", `section "main": option "region"`},
		{"config bridge 'main'\n\toption preset 'FAST'\n", `option "preset"`},
		{"config bridge 'main'\n\toption hop_limit '9'\n", `option "hop_limit"`},
		{"config bridge 'main'\nconfig peer 'hub'\n\toption address 'nope'\n", `section "hub": option "address"`},
	} {
		os.WriteFile(p, []byte(tc.body), 0o600)
		_, err := loadConfig(p)
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), p) {
			t.Errorf("%q: %v", tc.body, err)
		}
	}
	os.WriteFile(p, []byte("config bridge 'main'\n\toption region 'EU_868'\n"), 0o600)
	st, err := loadConfig(p)
	if err != nil || st.DutyPercent != 10 || st.Bridge.Budget.Limit().Seconds() != 180 {
		t.Fatalf("%+v %v", st, err)
	}
}
