// amqp091-go over TLS against the broker's AMQPS listener (HARE_AMQPS_URL) with the
// certificates tls-certs.sh wrote (HARE_TLS_DIR): round trips over TLS 1.2 and 1.3, EXTERNAL
// with a client certificate, and refusals: an untrusted CA, an expired server certificate (the
// client's clock moved past its validity), an expired client certificate (made here, signed by
// the trusted CA), an unknown common name. Prints one "pass|fail<TAB>go.NAME" line per test to
// the file named by its argument, and each failure's reason to stdout.
package main

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"math/big"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

var certs = os.Getenv("HARE_TLS_DIR")

func cert(name string) string { return filepath.Join(certs, name) }

func roots(name string) *x509.CertPool {
	pool := x509.NewCertPool()
	pem, err := os.ReadFile(cert(name))
	if err != nil || !pool.AppendCertsFromPEM(pem) {
		panic(fmt.Sprintf("cannot read CA %s: %v", name, err))
	}
	return pool
}

func config(ca string) *tls.Config {
	return &tls.Config{RootCAs: roots(ca), ServerName: "localhost"}
}

func withClient(c *tls.Config, name string) *tls.Config {
	pair, err := tls.LoadX509KeyPair(cert(name+".pem"), cert(name+".key"))
	if err != nil {
		panic(err)
	}
	c.Certificates = []tls.Certificate{pair}
	return c
}

// expiredClient signs a client certificate for CN=guest that expired in 2001.
func expiredClient() tls.Certificate {
	caPair, err := tls.LoadX509KeyPair(cert("ca.pem"), cert("ca.key"))
	if err != nil {
		panic(err)
	}
	caCert, err := x509.ParseCertificate(caPair.Certificate[0])
	if err != nil {
		panic(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		panic(err)
	}
	template := &x509.Certificate{
		SerialNumber: big.NewInt(2001),
		Subject:      pkix.Name{CommonName: "guest"},
		NotBefore:    time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC),
		NotAfter:     time.Date(2001, 1, 1, 0, 0, 0, 0, time.UTC),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, template, caCert, &key.PublicKey, caPair.PrivateKey)
	if err != nil {
		panic(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

func amqpsURL(user string) string {
	u, err := url.Parse(os.Getenv("HARE_AMQPS_URL"))
	if err != nil {
		panic(err)
	}
	u.Host = "localhost:" + u.Port()
	if user != "" {
		u.User = url.UserPassword(user, user)
	}
	return u.String()
}

func roundTrip(conn *amqp.Connection) error {
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		return err
	}
	q, err := ch.QueueDeclare("", false, true, true, false, nil)
	if err != nil {
		return err
	}
	body := bytes.Repeat([]byte("tls"), 20000) // several TLS records
	if err := ch.Publish("", q.Name, false, false, amqp.Publishing{Body: body}); err != nil {
		return err
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		msg, ok, err := ch.Get(q.Name, true)
		if err != nil {
			return err
		}
		if ok {
			if !bytes.Equal(msg.Body, body) {
				return errors.New("the body changed on the way")
			}
			return nil
		}
		if time.Now().After(deadline) {
			return errors.New("the message did not arrive")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// refused: err must be set and mention one of words.
func refused(conn *amqp.Connection, err error, words ...string) error {
	if err == nil {
		conn.Close()
		return errors.New("the connection was accepted")
	}
	for _, word := range words {
		if strings.Contains(err.Error(), word) {
			return nil
		}
	}
	return fmt.Errorf("unexpected error: %v", err)
}

func main() {
	results, err := os.OpenFile(os.Args[1], os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		panic(err)
	}
	defer results.Close()
	tests := []struct {
		name string
		run  func() error
	}{
		{"tls13_round_trip", func() error {
			c := config("ca.pem")
			c.MinVersion = tls.VersionTLS13
			conn, err := amqp.DialTLS(amqpsURL("guest"), c)
			if err != nil {
				return err
			}
			return roundTrip(conn)
		}},
		{"tls12_round_trip", func() error {
			c := config("ca.pem")
			c.MaxVersion = tls.VersionTLS12
			conn, err := amqp.DialTLS(amqpsURL("guest"), c)
			if err != nil {
				return err
			}
			return roundTrip(conn)
		}},
		{"external_login_with_client_certificate", func() error {
			conn, err := amqp.DialTLS_ExternalAuth(amqpsURL(""), withClient(config("ca.pem"), "client-guest"))
			if err != nil {
				return err
			}
			return roundTrip(conn)
		}},
		{"external_unknown_common_name_refused", func() error {
			conn, err := amqp.DialTLS_ExternalAuth(amqpsURL(""), withClient(config("ca.pem"), "client-mallory"))
			return refused(conn, err, "403", "ACCESS_REFUSED", "username or password not allowed")
		}},
		{"untrusted_server_certificate_refused", func() error {
			conn, err := amqp.DialTLS(amqpsURL("guest"), config("other-ca.pem"))
			return refused(conn, err, "certificate signed by unknown authority")
		}},
		{"expired_server_certificate_refused", func() error {
			c := config("ca.pem")
			c.Time = func() time.Time { return time.Now().AddDate(1, 0, 0) }
			conn, err := amqp.DialTLS(amqpsURL("guest"), c)
			return refused(conn, err, "certificate has expired")
		}},
		{"expired_client_certificate_refused", func() error {
			c := config("ca.pem")
			c.Certificates = []tls.Certificate{expiredClient()}
			conn, err := amqp.DialTLS_ExternalAuth(amqpsURL(""), c)
			return refused(conn, err, "expired certificate")
		}},
	}
	for _, test := range tests {
		outcome := "pass"
		if err := test.run(); err != nil {
			outcome = "fail"
			fmt.Printf("tls: go %s failed: %v\n", test.name, err)
		} else if os.Getenv("INTEROP_VERBOSE") == "1" {
			fmt.Printf("tls: go %s passed\n", test.name)
		}
		fmt.Fprintf(results, "%s\tgo.%s\n", outcome, test.name)
	}
}
