package main

import (
	"cmp"
	"database/sql"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"

	_ "modernc.org/sqlite" // registers "sqlite"
)

// notInTree names the frames of pages no table or index holds now (freed
// since, or past the copied database's end).
const notInTree = "(no table or index)"

// attribution is what one WAL holds: its committed frames of the current
// generation, the commits among them, and the frames by table or index.
type attribution struct {
	frames, commits int
	byTree          map[string]int
}

// attributeWAL attributes the committed frames of dir's WAL (data.db-wal)
// to the table or index each page belongs to (SQLite's dbstat on
// data.db). A page written by two commits counts twice, as SQLite wrote it.
// dir may be a running server's: both files are copied first, the WAL
// before the database, and only the copies are opened (SQLite checkpoints
// and removes a WAL when its last connection closes). A copy taken in the
// middle of a checkpoint can read as malformed: take another.
func attributeWAL(dir string) (attribution, error) {
	tmp, err := os.MkdirTemp("", "omni-walframes-of-")
	if err != nil {
		return attribution{}, err
	}
	defer os.RemoveAll(tmp)
	for _, name := range []string{"data.db-wal", "data.db"} {
		if err := copyFile(filepath.Join(dir, name), filepath.Join(tmp, name)); err != nil {
			return attribution{}, err
		}
	}
	db := filepath.Join(tmp, "data.db")
	pages, commits, err := walPages(db + "-wal")
	if err != nil {
		return attribution{}, err
	}
	conn, err := sql.Open("sqlite", "file:"+db)
	if err != nil {
		return attribution{}, err
	}
	defer conn.Close()
	rows, err := conn.Query("SELECT name, pageno FROM dbstat")
	if err != nil {
		return attribution{}, fmt.Errorf("%s: dbstat: %w", dir, err)
	}
	defer rows.Close()
	tree := map[uint32]string{}
	for rows.Next() {
		var name string
		var page uint32
		if err := rows.Scan(&name, &page); err != nil {
			return attribution{}, err
		}
		tree[page] = name
	}
	if err := rows.Err(); err != nil {
		return attribution{}, err
	}
	a := attribution{frames: len(pages), commits: commits, byTree: map[string]int{}}
	for _, p := range pages {
		name, ok := tree[p]
		if !ok {
			name = notInTree
		}
		a.byTree[name]++
	}
	return a, nil
}

func copyFile(from, to string) error {
	src, err := os.Open(from)
	if err != nil {
		return err
	}
	defer src.Close()
	dst, err := os.Create(to)
	if err != nil {
		return err
	}
	if _, err := io.Copy(dst, src); err != nil {
		dst.Close()
		return err
	}
	return dst.Close()
}

// walPages returns the page number of each committed frame of the WAL's
// current generation (frames whose salts are the header's; frames after the
// last commit are a transaction still being written) and how many commits
// there are.
func walPages(path string) (pages []uint32, commits int, err error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, 0, err
	}
	defer f.Close()
	var hdr [walHeaderBytes]byte
	if _, err := io.ReadFull(f, hdr[:]); err != nil {
		return nil, 0, fmt.Errorf("%s: no WAL header: %w", path, err)
	}
	if magic := binary.BigEndian.Uint32(hdr[0:]); magic&^1 != 0x377f0682 {
		return nil, 0, fmt.Errorf("%s: not a WAL (magic %#x)", path, magic)
	}
	pageSize := int(binary.BigEndian.Uint32(hdr[8:]))
	if pageSize == 1 {
		pageSize = 65536 // how the format writes 64 KiB
	}
	salt1, salt2 := binary.BigEndian.Uint32(hdr[16:]), binary.BigEndian.Uint32(hdr[20:])
	frame := make([]byte, walFrameHeaderBytes+pageSize)
	var pending []uint32
	for {
		if _, err := io.ReadFull(f, frame); errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			break
		} else if err != nil {
			return nil, 0, err
		}
		if binary.BigEndian.Uint32(frame[8:]) != salt1 || binary.BigEndian.Uint32(frame[12:]) != salt2 {
			break // an older generation's frame: the current one ends here
		}
		pending = append(pending, binary.BigEndian.Uint32(frame[0:]))
		if binary.BigEndian.Uint32(frame[4:]) != 0 { // the database's size after a commit
			pages, pending = append(pages, pending...), pending[:0]
			commits++
		}
	}
	return pages, commits, nil
}

// print writes a's frames by table or index, most first.
func (a attribution) print(w io.Writer, dir string) {
	fmt.Fprintf(w, "walframes: %s: %d committed frames in %d commits (%.0f per commit)\n",
		dir, a.frames, a.commits, float64(a.frames)/float64(max(a.commits, 1)))
	names := make([]string, 0, len(a.byTree))
	for n := range a.byTree {
		names = append(names, n)
	}
	slices.SortFunc(names, func(x, y string) int {
		return cmp.Or(cmp.Compare(a.byTree[y], a.byTree[x]), cmp.Compare(x, y))
	})
	for _, n := range names {
		fmt.Fprintf(w, "%9d  %5.1f %%  %s\n", a.byTree[n], 100*float64(a.byTree[n])/float64(max(a.frames, 1)), n)
	}
}
