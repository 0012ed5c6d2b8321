package config

import (
	"reflect"
	"strings"
	"testing"
)

func TestLoRaDefaults(t *testing.T) {
	for role, want := range map[string]LoRa{
		"hub":    {Socket: DefaultLoRaSocket, Port: 9643, Loopback: true, Overlay: true, Groups: []string{"hub"}},
		"relay":  {Socket: DefaultLoRaSocket, Port: 9643, Overlay: true, Groups: []string{"hub"}},
		"uplink": {Socket: DefaultLoRaSocket, Port: 9643, Overlay: true, Groups: []string{"hub"}},
		"client": {Socket: DefaultLoRaSocket, Port: 9643, Groups: []string{"hub"}},
	} {
		addr := map[string]string{"hub": "10.0.4.1", "relay": "10.0.4.33", "uplink": "10.0.4.64", "client": "10.0.4.130"}[role]
		text := "config overlay 'overlay'\n\toption role '" + role + "'\n\toption address '" + addr + "/24'\n"
		if role != "hub" {
			text += "config lighthouse\n\toption address '10.0.4.1'\n\tlist endpoint '192.0.2.1:4242'\n"
		}
		c, err := Parse("x", []byte(text))
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(c.LoRa, want) {
			t.Errorf("%s: %+v, want %+v", role, c.LoRa, want)
		}
		if c.Blocklist != "/etc/meshnode/blocklist" {
			t.Errorf("%s: blocklist %q", role, c.Blocklist)
		}
	}
	c, err := Parse("x", []byte(base+"\nconfig lora 'lora'\n\toption socket '/tmp/lb.sock'\n\toption port '9700'\n\toption overlay '1'\n\toption loopback 'yes'\n\tlist allow_group 'hub'\n\tlist allow_group 'ops'\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := LoRa{Socket: "/tmp/lb.sock", Port: 9700, Loopback: true, Overlay: true, Groups: []string{"hub", "ops"}}
	if !reflect.DeepEqual(c.LoRa, want) {
		t.Errorf("client with config lora: %+v", c.LoRa)
	}
}

func TestLoRaErrors(t *testing.T) {
	lo := func(body string) string { return base + "\nconfig lora 'lora'\n" + body }
	for _, tc := range []struct{ text, want string }{
		{lo("\toption socket 'lb.sock'\n"), `section 'lora' option 'socket': "lb.sock" is not an absolute path`},
		{lo("\toption port '0'\n"), `section 'lora' option 'port'`},
		{lo("\toption overlay 'sometimes'\n"), `section 'lora' option 'overlay': "sometimes" is not a boolean`},
		{lo("\toption loopback '2'\n"), `option 'loopback'`},
		{lo("\tlist allow_group 'a b'\n"), `section 'lora' option 'allow_group': "a b" has characters`},
		{lo("\toption overlay '1'\n\toption port '9642'\n") + "config overlay 'overlay'\n\toption metrics_port '9642'\n", `option 'port': 9642 is already the metrics or DNS port`},
		{lo("") + "config lora\n", `section '@lora[1]': more than one 'config lora' section`},
		{base + "config overlay 'overlay'\n\toption blocklist 'blocklist'\n", `section 'overlay' option 'blocklist': "blocklist" is not an absolute path`},
	} {
		_, err := Parse("/etc/config/meshnode", []byte(tc.text))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("want error containing %q, got %v\n%s", tc.want, err, tc.text)
		}
	}
}
