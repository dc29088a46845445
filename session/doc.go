// Package session keeps the named sessions: overlay upper dirs on bases.
//
// On disk, under the store root (beside the layers package's bases/ and
// layers/):
//
//	sessions/<name>/session.json  metadata, written atomically
//	sessions/<name>/upper/        everything the session wrote (overlay upperdir)
//	sessions/<name>/work/         overlayfs's scratch dir, same file system as upper
//	sessions/<name>/root/         where the session's root is mounted, inside
//	                              its own mount namespace only
//	tmp/                          sessions being created; renamed into sessions/
//	trash/                        discarded sessions on their way out
//
// A session directory appears under sessions/ only by a rename of a
// complete one from tmp/, so a crash during create leaves debris in tmp/
// and never a half-made session.
package session
