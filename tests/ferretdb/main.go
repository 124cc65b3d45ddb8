// Command ferretdb is the MongoDB wire-protocol server Dossier's tests run against:
// FerretDB v1 embedded as a library, SQLite handler (no external database), bound
// to 127.0.0.1 only, telemetry off. Prints one "ready <uri>" line once it accepts.
//
// FerretDB itself listens on a Unix socket in the data directory; the TCP port is a
// small proxy in front of it that fixes one thing: FerretDB v1.24 announces
// maxWriteBatchSize 100000, but each statement of an update command keeps one of
// the database's 100 SQLite connections until the command ends, so an update of
// about 100 statements (or a few big ones at once) waits forever for a connection.
// The proxy announces writeBatchLimit instead, so drivers split bigger bulks into
// commands it can run. Everything else passes through unchanged.
//
// Built by scripts/ferretdb.sh into .cache/ferretdb/ferretdb. It is a test tool,
// never part of a Dossier deployment (production runs a real MongoDB replica set).
package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/FerretDB/FerretDB/ferretdb"
)

func main() {
	port := flag.Int("port", 27017, "TCP port on 127.0.0.1")
	dir := flag.String("dir", "", "data directory (SQLite files; created if missing)")
	logLevel := flag.String("log-level", "warn", "debug, info, warn or error")
	flag.Parse()

	if *dir == "" || *port <= 0 || *port > 65535 {
		fmt.Fprintln(os.Stderr, "usage: ferretdb -port N -dir DIR [-log-level warn]")
		os.Exit(2)
	}
	abs, err := filepath.Abs(*dir)
	if err == nil {
		err = os.MkdirAll(abs, 0o755)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "ferretdb: data directory: %s\n", err)
		os.Exit(1)
	}

	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		level = slog.LevelWarn
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))

	addr := fmt.Sprintf("127.0.0.1:%d", *port)
	sock := filepath.Join(abs, "ferretdb.sock")
	os.Remove(sock) // left by a killed run
	// The embeddable package disables telemetry itself (state provider with
	// telemetry disabled and locked); nothing is reported anywhere.
	f, err := ferretdb.New(&ferretdb.Config{
		Listener:  ferretdb.ListenerConfig{Unix: sock},
		Logger:    logger,
		Handler:   "sqlite",
		SQLiteURL: "file:" + abs + "/",
	})
	if err != nil {
		fmt.Fprintf(os.Stderr, "ferretdb: %s\n", err)
		os.Exit(1)
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	listener, err := net.Listen("tcp", addr)
	if err != nil {
		fmt.Fprintf(os.Stderr, "ferretdb: %s\n", err)
		os.Exit(1)
	}
	go func() {
		<-ctx.Done()
		listener.Close()
	}()

	// Readiness is announced only once FerretDB accepts on its socket, so callers
	// wait on this line instead of sleeping.
	go func() {
		for ctx.Err() == nil {
			conn, err := net.DialTimeout("unix", sock, 200*time.Millisecond)
			if err == nil {
				conn.Close()
				go serve(ctx, listener, sock, logger)
				fmt.Printf("ready mongodb://%s/\n", addr)
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
	}()

	if err := f.Run(ctx); err != nil {
		fmt.Fprintf(os.Stderr, "ferretdb: %s\n", err)
		os.Exit(1)
	}
}

// serve proxies each TCP client to FerretDB's Unix socket until ctx ends.
func serve(ctx context.Context, listener net.Listener, sock string, logger *slog.Logger) {
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		client, err := listener.Accept()
		if err != nil {
			if ctx.Err() == nil {
				logger.Warn("accept failed", "error", err)
			}
			return
		}
		server, err := net.Dial("unix", sock)
		if err != nil {
			logger.Warn("cannot reach FerretDB", "error", err)
			client.Close()
			continue
		}
		wg.Add(2)
		go func() {
			defer wg.Done()
			io.Copy(server, client)
			server.(*net.UnixConn).CloseWrite()
		}()
		go func() {
			defer wg.Done()
			copyReplies(client, server)
			client.Close()
			server.Close()
		}()
	}
}

// maxWriteBatchSize is the int32 element FerretDB's hello reply carries; a few
// concurrent commands of writeBatchLimit statements stay well under 100 connections.
var maxWriteBatchSize = append([]byte{0x10}, []byte("maxWriteBatchSize\x00")...)

const writeBatchLimit = 16

// copyReplies copies whole wire messages from FerretDB to the client, patching the
// announced maxWriteBatchSize (same size, so lengths stay as they are).
func copyReplies(dst io.Writer, src io.Reader) {
	header := make([]byte, 16)
	for {
		if _, err := io.ReadFull(src, header); err != nil {
			return
		}
		length := int(binary.LittleEndian.Uint32(header[0:4]))
		if length < 16 || length > 64<<20 {
			return
		}
		body := make([]byte, length-16)
		if _, err := io.ReadFull(src, body); err != nil {
			return
		}
		if i := bytes.Index(body, maxWriteBatchSize); i >= 0 && i+len(maxWriteBatchSize)+4 <= len(body) {
			binary.LittleEndian.PutUint32(body[i+len(maxWriteBatchSize):], writeBatchLimit)
		}
		if _, err := dst.Write(header); err != nil {
			return
		}
		if _, err := dst.Write(body); err != nil {
			return
		}
	}
}
