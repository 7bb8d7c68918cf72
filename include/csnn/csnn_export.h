/*
 * csnn_export.h - symbol export macros of libcsnn.
 *
 * CSNN_API marks every public function. The library is compiled with hidden
 * visibility and a linker version script, so only functions marked here and
 * listed in lib/libcsnn.map are exported.
 *
 * Integrators may define CSNN_API themselves before including any libcsnn
 * header (for example to an empty token for a static build on Windows).
 */
#ifndef CSNN_EXPORT_H
#define CSNN_EXPORT_H

#if defined(CSNN_BUILDING) && defined(CSNN_USING_DLL)
#error "define at most one of CSNN_BUILDING and CSNN_USING_DLL"
#endif

#ifndef CSNN_API
#if defined(_WIN32)
#if defined(CSNN_BUILDING)
#define CSNN_API __declspec(dllexport)
#elif defined(CSNN_USING_DLL)
#define CSNN_API __declspec(dllimport)
#else
#define CSNN_API
#endif
#elif defined(__GNUC__) || defined(__clang__)
#define CSNN_API __attribute__((visibility("default")))
#else
#define CSNN_API
#endif
#endif

#ifndef CSNN_DEPRECATED
#if defined(__GNUC__) || defined(__clang__)
#define CSNN_DEPRECATED(msg) __attribute__((deprecated(msg)))
#else
#define CSNN_DEPRECATED(msg)
#endif
#endif

#endif /* CSNN_EXPORT_H */
