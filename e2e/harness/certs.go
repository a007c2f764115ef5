package harness

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// controlPlaneFiles are the per-run secrets of a control plane, written
// under its work dir.
type controlPlaneFiles struct {
	CACert    string // CA certificate (PEM); signs the serving cert
	CAKey     string // CA private key (PEM); kcm signs CSRs with it
	CAPEM     []byte
	ServeCert string // apiserver serving certificate (PEM)
	ServeKey  string // apiserver serving key (PEM)
	SAKey     string // RSA private key that signs service-account tokens
	SAPub     string // its public key, which verifies them
	TokenFile string // --token-auth-file with the admin token
	Token     string
}

// servingSANs are the names and addresses the apiserver serving cert is valid
// for: loopback for the harness, and the in-cluster names of the
// `kubernetes` Service (its ClusterIP is the first address of 10.96.0.0/12).
var (
	servingDNSNames = []string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local"}
	servingIPs      = []net.IP{net.IPv4(127, 0, 0, 1), net.IPv4(10, 96, 0, 1)}
)

// writeControlPlaneFiles generates a CA, a serving certificate, a
// service-account key pair and an admin token, and writes them under dir.
func writeControlPlaneFiles(dir string) (*controlPlaneFiles, error) {
	f := &controlPlaneFiles{
		CACert:    filepath.Join(dir, "ca.crt"),
		CAKey:     filepath.Join(dir, "ca.key"),
		ServeCert: filepath.Join(dir, "apiserver.crt"),
		ServeKey:  filepath.Join(dir, "apiserver.key"),
		SAKey:     filepath.Join(dir, "sa.key"),
		SAPub:     filepath.Join(dir, "sa.pub"),
		TokenFile: filepath.Join(dir, "tokens.csv"),
	}
	now := time.Now()

	// CA.
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	caTmpl := &x509.Certificate{
		SerialNumber:          randSerial(),
		Subject:               pkix.Name{CommonName: "fluxd-e2e-ca"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(7 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, fmt.Errorf("create CA: %w", err)
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		return nil, err
	}
	f.CAPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})
	if err := os.WriteFile(f.CACert, f.CAPEM, 0o644); err != nil {
		return nil, err
	}
	if err := writeECKey(f.CAKey, caKey); err != nil {
		return nil, err
	}

	// Serving cert.
	srvKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	srvTmpl := &x509.Certificate{
		SerialNumber: randSerial(),
		Subject:      pkix.Name{CommonName: "kube-apiserver"},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(7 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     servingDNSNames,
		IPAddresses:  servingIPs,
	}
	srvDER, err := x509.CreateCertificate(rand.Reader, srvTmpl, caCert, &srvKey.PublicKey, caKey)
	if err != nil {
		return nil, fmt.Errorf("create serving cert: %w", err)
	}
	if err := os.WriteFile(f.ServeCert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srvDER}), 0o644); err != nil {
		return nil, err
	}
	if err := writeECKey(f.ServeKey, srvKey); err != nil {
		return nil, err
	}

	// Service-account signing key.
	saKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(f.SAKey, pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(saKey)}), 0o600); err != nil {
		return nil, err
	}
	pubDER, err := x509.MarshalPKIXPublicKey(&saKey.PublicKey)
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(f.SAPub, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER}), 0o644); err != nil {
		return nil, err
	}

	// Admin token: token,user,uid,"group,...".
	tok := make([]byte, 32)
	if _, err := rand.Read(tok); err != nil {
		return nil, err
	}
	f.Token = hex.EncodeToString(tok)
	line := fmt.Sprintf("%s,admin,admin,\"system:masters\"\n", f.Token)
	if err := os.WriteFile(f.TokenFile, []byte(line), 0o600); err != nil {
		return nil, err
	}
	return f, nil
}

func writeECKey(path string, k *ecdsa.PrivateKey) error {
	der, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		return err
	}
	return os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}), 0o600)
}

func randSerial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	if err != nil {
		panic(err) // crypto/rand does not fail on Linux
	}
	return n
}
